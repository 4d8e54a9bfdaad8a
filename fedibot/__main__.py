from fedibot.cli.main import main

main()
