"""Every text source of the project behind one interface (``sources.TextSource``): the shared
corpora (``shared``), the datasets downloaded from the Hugging Face hub (``downloads``), the
generated stories with their exact entropy floor (``stories``, over ``grammar``,
``story_grammar`` and ``story_words``) and a user's own files. ``sources.get_source`` finds a
source by name (or path), ``sources.source_pair`` the training and validation pair, and
``settings.DataSettings`` is the one spelling of the data settings.

Imports only ``util`` and the tokenizer's document separator; the leaderboard and the
experiments ask this package for their text instead of knowing where it lives. Nothing is
imported here, so ``python -m tritonlm.corpora.stories`` and ``...downloads`` run their module once.
"""

if __name__ != "tritonlm.corpora":  # the folder imported as `corpora` from the repository root
    from tritonlm._short_names import become_alias

    become_alias(__name__)  # tritonlm.corpora, or another installed distribution named corpora
