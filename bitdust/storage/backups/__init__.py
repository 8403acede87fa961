"""Backups: jobs that turn catalog items into pieces on suppliers, the monitor that keeps
them there, and the encrypted catalog copy (``service_backups``, ``service_backup_db``)."""
