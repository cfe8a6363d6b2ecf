"""Small text corpora written for rnnkit, generated from templates (no files, no downloads).

- ``teddy``: sentences tagged token by token, where a first name is a PERSON only when a
  surname follows it ("teddy roosevelt" versus "teddy bears"): the right context decides.
- ``donald``: sentences where the word after "donald" depends on words well before it
  ("the president ... donald trump" versus "in the cartoon ... donald duck").
"""

from rnnkit.corpora import donald, teddy

__all__ = ["donald", "teddy"]
