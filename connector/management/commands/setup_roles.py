from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

CONNECTOR_ADMINS = "Connector admins"
SUPPORT = "Support"

LOG_MODELS = [("sync", "syncstate"), ("sync", "synclog"), ("webhooks", "hullnotification"),
              ("webhooks", "customeriowebhook")]


def _perms(app_label, model, actions):
    codenames = [f"{action}_{model}" for action in actions]
    return list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))


def roles_setup():
    """Create or refresh the two roles; returns {group name: permission count}."""
    support_perms = []
    for app_label, model in LOG_MODELS:
        support_perms += _perms(app_label, model, ["view", "change"])
    admin_perms = _perms("connector", "connector", ["add", "change", "delete", "view"]) + support_perms
    result = {}
    for name, perms in ((CONNECTOR_ADMINS, admin_perms), (SUPPORT, support_perms)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(perms)
        result[name] = len(perms)
    return result


class Command(BaseCommand):
    help = 'Create the "Connector admins" and "Support" groups with their permissions.'

    def handle(self, *args, **options):
        for name, count in roles_setup().items():
            self.stdout.write(f"{name}: {count} permissions")
