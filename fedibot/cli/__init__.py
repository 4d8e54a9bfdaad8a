"""The command line: thin click commands over the application's packages."""
