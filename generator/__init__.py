"""Free-form replies written by a language model from the shop's own knowledge, checked before they are sent.

A service layer like `shop`: no Rasa imports. `service.ReplyService` retrieves passages (`retrieval`), builds the
prompt (`prompt`), lets a backend (`backends`) write a reply in a worker thread under a time limit, runs every
check (`checks`) and falls back to the best passage or a safe template when a reply fails.
"""

import os

# The generator runs its models with PyTorch. With TensorFlow installed (Rasa needs it), transformers would also
# import TensorFlow and JAX on first use: about 350 MB more in the action server for nothing. Set before
# transformers is imported; a process that wants transformers' TensorFlow models can still set USE_TF=1.
os.environ.setdefault("USE_TF", "0")
