"""Media decoding: what each modality's loader workers do to an item before any model sees it."""
