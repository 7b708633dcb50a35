"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live_server.

Skipped (with the reason) when the `playwright` package or /usr/bin/chromium is missing; Playwright's
own browser download is never used. Set UPDATE_SCREENSHOTS=1 to refresh docs/*.png.
"""
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from connector.management.commands.setup_roles import CONNECTOR_ADMINS, SUPPORT, roles_setup

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
DOCS = Path(__file__).resolve().parents[2] / "docs"
PASSWORD = "browser-test-password"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives headless Chromium through Playwright (tests/browser)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                                                 "(pip install -r requirements-dev.txt)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls made by tests between
    # browser steps are still plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=live_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def roles(transactional_db):
    roles_setup()


def _member(username, group_name):
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


@pytest.fixture
def login(page, roles):
    """login("support") or login("admin"): a staff user in that role, logged in through the login form."""

    def log_in(role):
        username = {"support": "support-sam", "admin": "admin-alex"}[role]
        _member(username, SUPPORT if role == "support" else CONNECTOR_ADMINS)
        page.goto("/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        return page

    return log_in


@pytest.fixture
def screenshot(tmp_path):
    """Save a full-page screenshot to docs/<name> when UPDATE_SCREENSHOTS=1, else under tmp_path."""

    def take(page, name):
        target = DOCS / name if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / name
        page.screenshot(path=str(target), full_page=True)
        return target

    return take
