"""Where stored files (voice notes, documents) live: `storage.media.build_media_store(settings)`."""
