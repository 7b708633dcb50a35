import json

from django.core.management.base import BaseCommand, CommandError

from connector.models import Connector
from connector.settings_io import ConnectorSettingsError, connector_export, connectors_import, read_settings_file


class Command(BaseCommand):
    help = ("Import connectors from a JSON file (one object or a list; created or updated by hull_id) "
            "or export one connector's settings as JSON (DESIGN §4.4).")

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        importer = actions.add_parser("import", help="Create or update connectors from a JSON file.")
        importer.add_argument("file", help="JSON file: one connector object or a list of them.")
        exporter = actions.add_parser("export", help="Print a connector's settings as JSON.")
        exporter.add_argument("hull_id", help="Hull connector id of the connector to export.")
        exporter.add_argument("--with-secrets", action="store_true",
                              help="Include hull_secret, api_key and webhook_signing_key (omitted otherwise).")

    def handle(self, *args, **options):
        if options["action"] == "import":
            self._import(options["file"])
        else:
            self._export(options["hull_id"], options["with_secrets"])

    def _import(self, path):
        try:
            results = connectors_import(read_settings_file(path))
        except ConnectorSettingsError as err:
            details = "\n".join(f"  - {error}" for error in err.errors)
            raise CommandError(f"Invalid connector settings in {path}; nothing was changed:\n{details}") from err
        for connector, created in results:
            self.stdout.write(f"{'Created' if created else 'Updated'} connector {connector}")

    def _export(self, hull_id, with_secrets):
        connector = Connector.objects.filter(hull_id=hull_id).first()
        if connector is None:
            raise CommandError(f'No connector with hull_id "{hull_id}".')
        data = connector_export(connector, with_secrets=with_secrets)
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
