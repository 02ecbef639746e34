"""Where the events live: the database, the recorder, the transcoder, library overrides."""
