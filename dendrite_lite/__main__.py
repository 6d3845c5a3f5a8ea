from dendrite_lite.cli.main import main

main()
