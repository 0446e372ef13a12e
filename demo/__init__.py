"""Demo traffic: the specification's sample events, a seeded synthetic stream, and bad records."""
