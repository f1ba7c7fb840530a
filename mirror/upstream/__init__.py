"""The one way out: every request to the registry (and to anything else) goes through here."""
