from offerd.cli import main

main()
