"""Custom Rasa graph components of this project, referenced from config.yml by module path."""
