"""A procedural generator of short children's stories: the corpus the project trains on by default.

``python -m train.leaderboard`` must run on a fresh machine with no network and no ``../shared``,
and its loss curve and samples must still mean something. So the project writes its own corpus:
stories in the style of TinyStories, assembled from a cast (names with pronouns, animals,
traits), places, objects, colours, plot lines (a lost toy, a storm, a race, a birthday, a fear
of the dark, ...), dialogue with varied speech verbs, feelings and endings, each picked at
random from a seeded ``random.Random``. The same seed always gives the same text.

The text has real structure for a small LM to learn: pronouns agree with the name chosen
several sentences earlier, the friend who is introduced comes back, the object lost is the
object found, quotes open and close. Its unigram entropy (``unigram_entropy``) is the loss a
model that ignores context would reach, so a trained LM's validation loss far below it shows
the model learnt the context.

``python -m train.leaderboard.stories --out stories.txt --size 5MB --seed 0`` writes a corpus file;
documents are separated by a line ``<|endoftext|>``, like the shared corpora.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from tokenizer import END_OF_TEXT
from util.atomic import write_text_atomic
from util.cli import cli_main


GENERATOR_VERSION = 2  # bump when the text for a seed changes (cached corpora are keyed by it)
DOC_SEPARATOR = f"\n{END_OF_TEXT}\n"


def _words(text: str) -> list[str]:
    """A word list written compactly as ``"a|b|c"`` (spaces inside an entry are kept)."""
    return [w.strip() for w in text.split("|") if w.strip()]


# -- the story material ------------------------------------------------------------------------
GIRL_NAMES = _words("Lily|Mia|Sara|Anna|Emma|Zoe|Lucy|Ella|Rosa|Nina|Maya|Ruby|Ivy|Chloe|Grace|"
                    "Hannah|Amy|Lena|Sophie|Daisy|Kate|Nora|Alice|Jade|Luna|Olive|Pia|Tessa|Eva|Holly")
BOY_NAMES = _words("Tom|Ben|Max|Sam|Leo|Jack|Tim|Finn|Noah|Oscar|Jake|Theo|Luke|Adam|Eli|Hugo|"
                   "Omar|Ravi|Kai|Milo|Owen|Ned|Paul|Dan|Ivan|Jonah|Felix|Carl|Rex|Ali")
ANIMAL_NAMES = _words("Pip|Bella|Spot|Coco|Buddy|Fluffy|Bubbles|Ziggy|Patch|Nutmeg|Pepper|Biscuit|"
                      "Dot|Sunny|Whiskers|Hoppy|Squeak|Toffee|Button|Pickle|Maple|Peanut|Shadow|Twinkle")
GIRLS = _words("girl|little girl|princess")
BOYS = _words("boy|little boy|prince")
ANIMALS = _words("cat|dog|bunny|fox|bear|bird|mouse|frog|duck|owl|puppy|kitten|squirrel|turtle|"
                 "pig|cow|lion|tiger|elephant|monkey|hen|goat|horse|deer|hedgehog|penguin|dragon|"
                 "unicorn|robot|fish")
TRAITS = _words("kind|brave|shy|happy|curious|silly|clever|gentle|small|friendly|funny|quiet|"
                "careful|busy|little|cheerful|bold|sleepy|playful|helpful")
PLACES = _words("park|forest|garden|farm|village|beach|meadow|house|school|zoo|pond|hill|"
                "jungle|castle|town|lake|field|yard|library|playground|river|cave|shop|island|barn")
OBJECTS = _words("ball|kite|hat|toy car|teddy bear|book|balloon|drum|boat|doll|scarf|cup|"
                 "blanket|box|bell|bike|crayon|shell|rock|flower|train|robot|puzzle|pillow|wagon|"
                 "jar|stick|feather|map|bucket")
COLOURS = _words("red|blue|green|yellow|pink|purple|orange|white|black|brown|gold|silver|shiny|"
                 "big|tiny|soft|old|new|round|striped")
ACTIVITIES = _words("to play outside|to sing songs|to read books|to run fast|to draw pictures|"
                    "to dance|to jump in puddles|to climb trees|to eat apples|to swim|to build things|"
                    "to look at the stars|to pick flowers|to play games|to help others|to bake cakes|"
                    "to tell jokes|to explore|to splash in the water|to ride a bike")
TIMES = _words("morning|sunny day|rainy day|windy afternoon|cold night|warm evening|snowy morning|"
               "bright day|summer day|spring morning")
OPENINGS = _words("Once upon a time, there was {a} {t} {k} named {n}.|"
                  "Once upon a time, near a big {place}, there lived {a} {t} {k} called {n}.|"
                  "One {time}, {a} {t} {k} named {n} went to the {place}.|"
                  "{n} was {a} {t} {k} who lived near the {place}.|"
                  "There once was {a} {t} {k}. {P} name was {n}.|"
                  "Every day, {n} the {k} went to the {place}.|"
                  "It was a {time}. {n} the {t} {k} woke up early.")
LIKES = _words("{s} loved {act}.|{s} liked {act} more than anything.|Most of all, {l} wanted {act}.|"
               "{s} always wanted {act} with {p} friends.|Every day, {l} tried {act}.")
MEETINGS = _words("At the {place}, {n} met {a} {t} {k} named {f}.|"
                  "On the way, {n} saw {f} the {k}.|"
                  "{n} had a friend, {a} {t} {k} called {f}.|"
                  "Soon, {f} the {k} came to play.|"
                  "Near the {place}, {n} found {f}, {a} {t} {k}.")
GREETINGS = _words("Hello, {n}|Hi, {n}! Do you want to play|Good morning, {n}|"
                   "Hi {n}, what are you doing?|Come and play with me, {n}|"
                   "{n}, look at the {place}|Hello! Can I be your friend?")
REPLIES = _words("Yes, {n}! Let us play|Hello, {n}. I like {act}|Sure, {n}, that sounds fun|"
                 "Hi {n}! I want {act} today|Yes, please|Okay, {n}, let us go")
SAY_VERBS = _words("said|shouted|whispered|cried|laughed|replied|called|answered|yelled|sang")
ASK_VERBS = _words("asked|wondered|cried|called|whispered")
FEELINGS = {
    "happy": _words("happy|glad|very happy|joyful|excited|cheerful|full of joy"),
    "sad": _words("sad|very sad|upset|unhappy|lonely|worried"),
    "scared": _words("scared|afraid|frightened|nervous|very scared"),
    "calm": _words("safe|calm|warm and safe|better|relieved"),
    "angry": _words("angry|grumpy|cross|mad"),
    "proud": _words("proud|very proud|happy and proud|strong"),
    "surprised": _words("surprised|amazed|very surprised|full of wonder"),
}
PLOTS = _words("lost|storm|race|share|dark|bake|help|learn|birthday|treasure")
HIDING_SPOTS = _words("under the bed|behind a tree|in the tall grass|under a big rock|inside a box|"
                      "near the pond|on top of the shelf|in the sand|under the leaves|behind the door")
WEATHER = _words("dark clouds filled the sky|it began to rain very hard|a loud thunder boomed|"
                 "the wind started to blow hard|big snowflakes began to fall|lightning lit up the sky")
SHELTERS = _words("under the big tree|in the old barn|inside the house|in a dry cave|under the bridge|"
                  "under a big umbrella")
LANDMARKS = _words("big tree|red barn|old bridge|tall hill|blue pond|little house|green gate|"
                   "big rock|river|flower field|windmill|fence")
SOUNDS = _words("hoot hoot|creak|tap tap tap|whoosh|squeak|thump|buzz")
NIGHT_VISITORS = _words("a little owl|the wind in the trees|a tiny mouse|a friendly cat|"
                        "a branch on the window|a sleepy frog")
FOODS = _words("a cake|cookies|a pie|bread|muffins|pancakes|a big soup|apple tarts")
RELATIVES = _words("Mom|Dad|Grandma|Grandpa|their teacher|their friends|the whole town|baby sister")
BAKING_STEPS = _words("mixed the flour|added the eggs|poured in the milk|stirred the bowl|"
                      "put it in the oven|added some sugar|waited for it to bake|washed the fruit")
TROUBLES = _words("was stuck in a tree|had lost the way home|could not reach the apples|"
                  "had a hurt paw|was stuck in the mud|could not carry a heavy bag|"
                  "had fallen into the pond")
HELP_ACTIONS = _words("helped right away|found a long stick to help|called for help|"
                      "showed the way home|carried the heavy bag|gave a big push|held out a hand")
SKILLS = _words("swim|ride a bike|jump rope|climb the hill|whistle|fly a kite|read a book|"
                "tie a knot|skate|catch a ball")
GIFTS = _words("a drawing|a pretty stone|a flower crown|a small cake|a paper boat|a new ball|a song|"
               "a shiny shell")
TREASURES = _words("a box of shiny coins|a nest of baby birds|a field of gold flowers|"
                   "an old toy chest|a beautiful glass egg|a secret garden|a pile of sweet berries")
ENDINGS = _words("From that day on, {n} and {f} were best friends.|"
                 "That night, {n} went to bed with a big smile.|"
                 "{n} and {f} played at the {place} every day after that.|"
                 "{n} hugged {p} {th} and fell asleep.|"
                 "They went home, happy and tired.|"
                 "And {n} never forgot that special day.|"
                 "The end.")
MORALS = _words("Friends help each other.|It is good to share.|Being brave is not easy, but it is worth it.|"
                "Never give up.|Kindness makes everyone happy.|Every day can be an adventure.")


@dataclass(frozen=True)
class Character:
    name: str
    kind: str  # "girl", "fox", ...
    subject: str  # he / she
    object: str  # him / her
    possessive: str  # his / her
    trait: str  # "brave", ...

    @property
    def He(self) -> str:
        return self.subject.capitalize()

    @property
    def His(self) -> str:
        return self.possessive.capitalize()


def _pick_character(rng: random.Random, exclude: str = "") -> Character:
    """A named character with matching pronouns; animals get animal names, children human ones."""
    feminine = rng.random() < 0.5
    if rng.random() < 0.45:
        kind = rng.choice(GIRLS if feminine else BOYS)
        names = GIRL_NAMES if feminine else BOY_NAMES
    else:
        kind = rng.choice(ANIMALS)
        names = ANIMAL_NAMES
    name = rng.choice([n for n in names if n != exclude])
    subject, obj, poss = ("she", "her", "her") if feminine else ("he", "him", "his")
    return Character(name, kind, subject, obj, poss, rng.choice(TRAITS))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class _StoryWriter:
    """Holds one story's cast and props and writes its sentences."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.hero = _pick_character(rng)
        self.friend = _pick_character(rng, exclude=self.hero.name)
        self.place = rng.choice(PLACES)
        self.colour = rng.choice(COLOURS)
        self.thing = rng.choice(OBJECTS)
        self.sentences: list[str] = []

    # -- helpers ---------------------------------------------------------------------------
    def pick(self, options: Iterable[str]) -> str:
        return self.rng.choice(list(options))

    def say(self, text: str) -> None:
        self.sentences.append(text[0].upper() + text[1:])

    def quote(self, who: Character, words: str, question: bool = False) -> None:
        verb = self.pick(ASK_VERBS if question else SAY_VERBS)
        mark = "" if words[-1] in "?!." else "?" if question else self.pick([".", "!", "."])
        if self.rng.random() < 0.5:
            mark = "," if mark == "." else mark
            self.say(f'"{words}{mark}" {verb} {who.name}.')
        else:
            self.say(f'{who.name} {verb}, "{words}{mark}"')

    def feel(self, who: Character, mood: str) -> None:
        feeling = self.pick(FEELINGS[mood])
        template = self.pick(
            ["{n} felt {f}.", "{n} was very {f}.", "{s} felt so {f}.", "This made {o} feel {f}."]
        )
        self.say(template.format(n=who.name, s=who.subject, o=who.object, f=feeling))

    # -- the parts of a story --------------------------------------------------------------
    def opening(self) -> None:
        h, r = self.hero, self.rng
        template = self.pick(OPENINGS)
        self.say(template.format(a=_article(h.trait), t=h.trait, k=h.kind, n=h.name, P=h.His,
                                 place=self.place, time=self.pick(TIMES)))
        self.say(self.pick(LIKES).format(s=h.He, l=h.subject, p=h.possessive, act=self.pick(ACTIVITIES)))
        if r.random() < 0.7:
            self.say(f"{h.He} had {_article(self.colour)} {self.colour} {self.thing} that "
                     f"{h.subject} {self.pick(['loved', 'liked very much', 'took everywhere'])}.")

    def meet_friend(self) -> None:
        h, f = self.hero, self.friend
        self.say(self.pick(MEETINGS).format(n=h.name, f=f.name, k=f.kind, a=_article(f.trait),
                                              t=f.trait, place=self.place))
        self.quote(f, self.pick(GREETINGS).format(n=h.name, place=self.place))
        self.quote(h, self.pick(REPLIES).format(n=f.name, act=self.pick(ACTIVITIES)))

    def plot(self) -> None:
        getattr(self, "plot_" + self.pick(PLOTS))()

    def plot_lost(self) -> None:
        h, f, th = self.hero, self.friend, self.thing
        self.say(f"One day, {h.name} could not find {h.possessive} {self.colour} {th}.")
        self.feel(h, "sad")
        self.quote(h, f"Where is my {th}", question=True)
        spot = self.pick(HIDING_SPOTS)
        self.say(f"{f.name} helped {h.object} look {self.pick(['everywhere', 'all around the ' + self.place, 'high and low'])}.")
        self.say(f"At last, {f.name} found the {th} {spot}.")
        self.quote(h, f"Thank you, {f.name}! You found my {th}")
        self.feel(h, "happy")

    def plot_storm(self) -> None:
        h, f = self.hero, self.friend
        weather = self.pick(WEATHER)
        self.say(f"Suddenly, {weather}.")
        self.feel(h, "scared")
        self.quote(h, "What should we do", question=True)
        self.quote(f, f"Let us hide {self.pick(SHELTERS)}")
        self.say(f"They waited together until the sky was {self.pick(['clear', 'blue', 'quiet', 'bright'])} again.")
        self.feel(h, "calm")

    def plot_race(self) -> None:
        h, f = self.hero, self.friend
        goal = self.pick(LANDMARKS)
        self.quote(f, f"Let us race to the {goal}")
        self.say(f"{h.name} and {f.name} ran as fast as they could.")
        if self.rng.random() < 0.5:
            self.say(f"{h.name} won the race, but {h.subject} waited for {f.name} at the {goal}.")
            self.quote(f, "You are so fast")
        else:
            self.say(f"{f.name} won the race. {h.name} was a little sad, but then {h.subject} smiled.")
            self.quote(h, "Good job! Let us race again tomorrow")
        self.feel(h, "happy")

    def plot_share(self) -> None:
        h, f, th = self.hero, self.friend, self.thing
        self.say(f"{f.name} saw the {th} and wanted to play with it too.")
        self.quote(f, f"Can I play with your {th}", question=True)
        if self.rng.random() < 0.6:
            self.say(f"At first, {h.name} did not want to share.")
            self.feel(h, "angry")
            self.say(f"Then {h.subject} saw that {f.name} was sad, and {h.subject} changed {h.possessive} mind.")
        self.quote(h, f"Yes, we can play with it together")
        self.say(f"They played with the {th} all {self.pick(['day', 'afternoon', 'morning'])} long.")
        self.say("Sharing made them both " + self.pick(FEELINGS["happy"]) + ".")

    def plot_dark(self) -> None:
        h, f = self.hero, self.friend
        self.say(f"When night came, the {self.place} became very dark.")
        self.say(f"{h.name} heard a strange sound: {self.pick(SOUNDS)}!")
        self.feel(h, "scared")
        self.quote(h, "Who is there", question=True)
        self.say(f"It was only {self.pick(NIGHT_VISITORS)}.")
        self.quote(f, "See? There is nothing to be afraid of")
        self.say(f"{h.name} laughed, and {h.subject} was not scared of the dark any more.")

    def plot_bake(self) -> None:
        h, f = self.hero, self.friend
        food = self.pick(FOODS)
        self.say(f"{h.name} and {f.name} wanted to make {food} for {self.pick(RELATIVES)}.")
        steps = self.rng.sample(BAKING_STEPS, 3)
        self.say(f"First they {steps[0]}. Then they {steps[1]}. Last, they {steps[2]}.")
        if self.rng.random() < 0.5:
            self.say(f"Oh no! {f.name} dropped the {self.pick(['flour', 'eggs', 'sugar', 'bowl'])} on the floor.")
            self.quote(h, "It is okay. We can clean it up and try again")
        dish = food.split(" ", 1)[1] if food.startswith("a ") else food
        self.say(f"The {dish} {self.pick(['smelled so good', 'looked wonderful', 'tasted sweet'])}.")
        self.feel(h, "proud")

    def plot_help(self) -> None:
        h = self.hero
        other = _pick_character(self.rng, exclude=h.name)
        trouble = self.pick(TROUBLES)
        self.say(f"Then {h.name} saw {_article(other.trait)} {other.trait} {other.kind} named "
                 f"{other.name}. {other.He} {trouble}.")
        self.quote(other, "Please help me")
        self.say(f"{h.name} was {h.trait}, so {h.subject} {self.pick(HELP_ACTIONS)}.")
        self.quote(other, f"Thank you, {h.name}. You are a good friend")
        self.feel(h, "proud")

    def plot_learn(self) -> None:
        h, f = self.hero, self.friend
        skill = self.pick(SKILLS)
        self.say(f"{h.name} wanted to learn to {skill}, but it was hard.")
        self.say(f"The first time, {h.subject} {self.pick(['fell down', 'made a mistake', 'got it all wrong'])}.")
        self.feel(h, "sad")
        self.quote(f, "Do not give up. Try again")
        self.say(f"{h.name} tried again and again. At last, {h.subject} could {skill}!")
        self.feel(h, "proud")

    def plot_birthday(self) -> None:
        h, f = self.hero, self.friend
        self.say(f"It was {f.name}'s birthday, and {h.name} wanted to give {f.object} a present.")
        gift = self.pick(GIFTS)
        self.say(f"{h.He} {self.pick(['made', 'found', 'painted', 'picked'])} {gift} for {f.object}.")
        self.quote(h, f"Happy birthday, {f.name}! This is for you")
        self.say(f"{f.name} opened it and {self.pick(['smiled', 'clapped', 'jumped up and down', 'gave ' + h.name + ' a big hug'])}.")
        self.feel(f, "happy")

    def plot_treasure(self) -> None:
        h, f = self.hero, self.friend
        self.say(f"One day, {h.name} found an old map {self.pick(HIDING_SPOTS)}.")
        self.quote(h, "Look! It is a treasure map")
        self.say(f"{h.name} and {f.name} followed the map past the {self.pick(LANDMARKS)} and over the {self.pick(LANDMARKS)}.")
        prize = self.pick(TREASURES)
        self.say(f"At the end of the map, they found {prize}.")
        self.feel(h, "surprised")
        self.quote(f, "This is the best day ever")

    def ending(self) -> None:
        h, f = self.hero, self.friend
        self.say(self.pick(ENDINGS).format(n=h.name, f=f.name, s=h.subject, p=h.possessive,
                                             place=self.place, th=self.thing))
        if self.rng.random() < 0.35:
            self.say(self.pick(MORALS))

    def write(self) -> str:
        self.opening()
        self.meet_friend()
        self.plot()
        if self.rng.random() < 0.3:
            self.plot()
        self.ending()
        return " ".join(self.sentences)


def generate_story(rng: random.Random) -> str:
    """One story, drawn from ``rng`` (a ``random.Random``)."""
    return _StoryWriter(rng).write()


def iter_stories(seed: int = 0) -> Iterator[str]:
    """An endless, deterministic stream of stories for ``seed``."""
    rng = random.Random(seed)
    while True:
        yield generate_story(rng)


def generate_corpus(num_bytes: int, seed: int = 0) -> str:
    """Stories for ``seed`` until the text holds at least ``num_bytes`` UTF-8 bytes.

    Documents are separated by a line ``<|endoftext|>`` (as in the shared corpora).
    """
    if num_bytes <= 0:
        raise ValueError(f"num_bytes must be positive, got {num_bytes}")
    parts, size = [], 0
    for story in iter_stories(seed):
        parts.append(story)
        size += len(story) + len(DOC_SEPARATOR)
        if size >= num_bytes:
            break
    return DOC_SEPARATOR.join(parts) + DOC_SEPARATOR


def write_corpus(path: str | os.PathLike, num_bytes: int, seed: int = 0) -> Path:
    """Write ``generate_corpus(num_bytes, seed)`` to ``path`` atomically; returns the path."""
    return write_text_atomic(path, generate_corpus(num_bytes, seed))


def unigram_entropy(tokens: Iterable[int] | np.ndarray) -> float:
    """Entropy in nats per token of the empirical unigram distribution of a token stream.

    This is the cross-entropy of the best context-free predictor of the stream, in the same
    unit (nats) as the LM's validation loss: a model below it has learnt to use context.
    """
    ids = np.asarray(tokens if isinstance(tokens, np.ndarray) else list(tokens)).ravel()
    if ids.size == 0:
        raise ValueError("unigram_entropy needs at least one token")
    counts = np.bincount(ids.astype(np.int64))
    p = counts[counts > 0] / ids.size
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class CorpusStats:
    documents: int
    bytes: int
    words: int
    distinct_words: int
    distinct_sentences: int
    word_entropy_nats: float


def corpus_stats(text: str) -> CorpusStats:
    """Counts that show how varied a corpus is (documents, vocabulary, distinct sentences)."""
    docs = [d for d in text.split(END_OF_TEXT) if d.strip()]
    words = re.findall(r"[A-Za-z']+", text)
    counts = Counter(w.lower() for w in words)
    total = sum(counts.values())
    entropy = -sum(c / total * math.log(c / total) for c in counts.values()) if total else 0.0
    sentences = {s.strip() for d in docs for s in re.split(r"(?<=[.!?\"])\s+", d) if s.strip()}
    return CorpusStats(len(docs), len(text.encode("utf-8")), total, len(counts), len(sentences), entropy)


def parse_size(text: str) -> int:
    """``"5MB"``, ``"300kB"``, ``"1.5M"`` or ``"20000"`` -> bytes (powers of 1000)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)[bB]?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"cannot read size {text!r}; use e.g. 5MB, 300kB or 20000")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.leaderboard.stories", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--size", type=parse_size, default=parse_size("5MB"), help="bytes, e.g. 5MB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=1, help="print this many stories")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = write_corpus(args.out, args.size, args.seed)
    seconds = time.perf_counter() - start
    text = path.read_text(encoding="utf-8")
    stats = corpus_stats(text)
    for story in text.split(DOC_SEPARATOR)[: args.show]:
        print(story, end="\n\n")
    print(f"wrote {path}: {stats.bytes / 1e6:.2f} MB, {stats.documents} stories in {seconds:.1f} s "
          f"({stats.bytes / 1e6 / seconds:.1f} MB/s); {stats.distinct_words} distinct words, "
          f"{stats.distinct_sentences} distinct sentences, word entropy {stats.word_entropy_nats:.2f} nats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
