"""The `fieldvision` command line: parsing and printing only, no pipeline logic."""
