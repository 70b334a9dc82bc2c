"""The document model, its builder from a derivation, and its pictures and their layout."""
