"""Generated a2v contract (from protos/). Do not edit: run `make proto`."""
