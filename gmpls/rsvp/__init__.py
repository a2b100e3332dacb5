"""gmpls/rsvp."""
