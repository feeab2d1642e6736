"""The server-rendered web front end: pages, their session cookie and static files."""
