"""The offerd command (main), and what only it uses: the demo site and catalog files."""
