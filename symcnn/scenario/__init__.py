"""The scenario: its model and validation, the sources it is read from, the built-ins."""
