"""Customers' personal data: retention (delete or anonymise what is older than shop.yml `privacy` allows), and
erasure and export of one customer's data on request (by email).

Why one package: the data lies in three databases that the rest of the project writes independently (the shop's,
Rasa's tracker store, the event consumer's stream), and only a view across all three answers "what do we hold about
this person?". One module per concern:

- `stores`: which databases, opened read-safely (nothing is created, a bad URL is a clear error);
- `matching`: when a text, an event or a conversation belongs to a customer;
- `customer`: finding everything of one customer;
- `export`: the readable JSON copy of it;
- `erasure`: erasing it (orders stay as the shop's records, with the contact data kept or anonymised);
- `retention`: deleting what is older than the configured ages;
- `cli`: `python -m shop.privacy retention | export | erase` (docs/privacy.md).
"""
