"""Browser tests of the admin panel."""
