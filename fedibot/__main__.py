from fedibot.cli import main

main()
