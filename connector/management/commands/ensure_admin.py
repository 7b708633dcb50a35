import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Make sure an admin login exists for local use and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("ADMIN_USERNAME", "admin"))

    def handle(self, *args, **options):
        username = options["username"]
        password_file = Path(settings.BASE_DIR) / ".admin-password"
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None or not password_file.exists():
            password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            user = user or user_model(username=username, email=f"{username}@localhost")
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        self.stdout.write(
            f"Admin login: http://127.0.0.1:8000/admin/  user '{username}'  password '{password}' "
            f"(stored in {password_file.name}, local use only)"
        )
