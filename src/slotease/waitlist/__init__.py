"""The waitlist of full slots: join, leave, offers and accepting them."""
