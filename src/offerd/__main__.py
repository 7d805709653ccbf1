from offerd.cli.main import main

main()
