"""The Django admin, when ADMIN_ENABLED (project/settings.py installs these):

    apps.py        the admin app, with the service's site as its default site
    site.py        that site (a database that cannot be reached is a 503, not a 500) and
                   the view that serves the admin's static files
    middleware.py  sessions, CSRF, authentication and messages for the admin's URLs only

The service's own admin pages (orders, reports, the outbox) are in app/admin.py.
"""
