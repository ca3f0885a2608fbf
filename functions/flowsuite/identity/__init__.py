"""Identity: Firebase Auth as the one identity service; profiles, roles, deletion."""
