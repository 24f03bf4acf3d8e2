"""The shop's service layer: database models and the business rules the actions call.

Nothing here knows about Rasa; actions translate between conversations and these functions.
"""
