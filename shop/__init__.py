"""The shop's service layer: database models and the business rules the actions call.

Nothing here knows about Rasa; actions translate between conversations and these functions.

Importing the package masks personal data in every log record of the process (shop/pii.py): Rasa (its endpoints
and channels import the package), the action server and every command of the project import it before they log
anything a customer wrote.
"""

from shop.pii import install_log_masking

install_log_masking()
