"""The admin side: the admin API and the panel's static files."""
