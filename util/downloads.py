"""The old home of the dataset downloads, kept so that ``python -m util.downloads tinystories``
in a user's scripts still works: it runs ``python -m tritonlm.corpora.downloads`` (the code lives
there now). Nothing is imported unless it runs as a command, so ``util`` still imports nothing of
the project."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("tritonlm.corpora.downloads", run_name="__main__", alter_sys=True)
