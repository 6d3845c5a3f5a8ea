"""The PyInstaller binary's entry point: the same `dendrite-lite` command as the pip install."""

from dendrite_lite.cli.main import main

if __name__ == "__main__":
    main()
