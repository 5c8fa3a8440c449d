"""Model card templates (package data); the repository links model_cards/ here."""
