"""The story grammar: ``write_story(w)`` writes one children's story through a ``grammar.Writer``.

Every random choice is a ``w.choose`` (it writes what it picks) or a ``w.branch`` (a path that the
following text shows), and no two sequences of choices write the same story, so the story's
log-probability (``w.logp``) is exact: the tests parse stories back into their one derivation.
Characters are chosen as they are first written (a child's kind, or else the name, fixes the
pronouns); the structure is an opening, a friend, one or two plots, an ending.
"""

from __future__ import annotations

import functools
import string

from .grammar import Writer
from .story_words import (ACTIVITIES, ANIMALS, ASK_VERBS, BAKING_STEPS, BOY_NAMES, BOYS, COLOURS, COUNTED,
                          ENDINGS, FEELINGS, FOODS, GIFTS, GIRL_NAMES, GIRLS, GREETINGS, HELP_ACTIONS, HIDING_SPOTS,
                          HOUSE_NUMBERS, LANDMARKS, LIKES, MEETINGS, MORALS, NIGHT_VISITORS, NUMBERS, OBJECTS,
                          OPENINGS, PLACES, PLOTS, RELATIVES, REPLIES, SAY_VERBS, SHELTERS, SKILLS, SOUNDS, STREETS,
                          TIMES, TOWNS, TRAITS, TREASURES, TROUBLES, WEATHER)

KINDS = {"f": GIRLS, "m": BOYS}


@functools.lru_cache(maxsize=None)
def _parsed(template: str) -> tuple[tuple[str, str | None], ...]:
    """``template``'s (literal text, field name) pieces, parsed once."""
    return tuple((literal, field) for literal, field, _, _ in string.Formatter().parse(template))
TRAITS_WITH_ARTICLE = [f"{'an' if t[0] in 'aeiou' else 'a'} {t}" for t in TRAITS]


class Character:
    """A character whose attributes are chosen the first time the story writes them (and then
    written the same way): kind, name, trait. A girl's or boy's kind, or else the name (girls'
    and boys' names have different endings), fixes the pronouns."""

    def __init__(self, exclude: "Character | None" = None):
        self.kind: str | None = None
        self.name: str | None = None
        self.trait: str | None = None  # with its article: "a brave"
        self.gender: str | None = None  # "f" | "m"
        self.exclude = exclude  # a character whose name this one must not share

    # -- choosing attributes as they are written -----------------------------------------
    def write_kind(self, w: Writer) -> None:
        if self.kind is None:
            if self.gender is None:  # any kind: a child fixes the gender, an animal leaves it to the name
                options = GIRLS + BOYS + ANIMALS
                weights = [0.25 / len(GIRLS)] * len(GIRLS) + [0.25 / len(BOYS)] * len(BOYS) \
                    + [0.5 / len(ANIMALS)] * len(ANIMALS)
                self.kind = options[w.choose(options, weights)]
                self.gender = "f" if self.kind in GIRLS else "m" if self.kind in BOYS else None
            else:  # the name came first: a child of its gender, or an animal
                options = KINDS[self.gender] + ANIMALS
                self.kind = options[w.choose(options)]
        else:
            w.text(self.kind)

    def write_name(self, w: Writer) -> None:
        if self.name is None:
            options, index = (ALL_NAMES, ALL_NAME_INDEX) if self.gender is None else \
                (GIRL_NAMES, GIRL_INDEX) if self.gender == "f" else (BOY_NAMES, BOY_INDEX)
            other = index.get(self.exclude.name) if self.exclude is not None else None
            self.name = options[w.choose(options, exclude=other)]
            self.gender = "f" if self.name in GIRL_INDEX else "m"
        else:
            w.text(self.name)

    def write_trait(self, w: Writer, article: bool = True) -> None:
        if self.trait is None:
            self.trait = TRAITS_WITH_ARTICLE[w.choose(TRAITS_WITH_ARTICLE if article else TRAITS)]
        else:
            w.text(self.trait if article else self.trait.split(" ", 1)[1])

    # -- pronouns (the gender is known once the kind or the name is written) ------------------
    @property
    def subject(self) -> str:
        return "she" if self.gender == "f" else "he"

    @property
    def object(self) -> str:
        return "her" if self.gender == "f" else "him"

    @property
    def possessive(self) -> str:
        return "her" if self.gender == "f" else "his"


ALL_NAMES = GIRL_NAMES + BOY_NAMES
GIRL_INDEX, BOY_INDEX, ALL_NAME_INDEX = ({name: i for i, name in enumerate(names)}
                                         for names in (GIRL_NAMES, BOY_NAMES, ALL_NAMES))


class StoryWriter:
    """Writes one story through a ``Writer``: every random choice is a ``w.choose`` (it writes what
    it picks) or a ``w.branch`` (a path, visible in what follows), so the story's probability is
    exact. The structure: an opening, a friend, one or two plots, an ending."""

    def __init__(self, w: Writer):
        self.w = w
        self.hero = Character()
        self.friend = Character(exclude=self.hero)
        self.place: str | None = None
        self.colour_thing: tuple[str, str] | None = None
        self.house: str | None = None  # the hero's house number, when the story gives one

    # -- helpers ------------------------------------------------------------------------------
    def fill(self, template: str, **fields) -> None:
        """Write ``template`` left to right: literal text as is, each ``{field}`` by its value
        (a string, written as is, or a function that chooses and writes)."""
        for literal, field in _parsed(template):
            if literal:
                self.w.text(literal)
            if field is not None:
                value = fields[field]
                value() if callable(value) else self.w.text(value)

    def pick(self, options: list[str]) -> str:
        return options[self.w.choose(options)]

    def choice(self, options: list[str]):
        """A field that chooses among ``options`` when it is written."""
        return lambda: self.pick(options)

    def template(self, templates: list[str], **fields) -> None:
        """One of ``templates`` (a path: its fixed text tells which), written with ``fields``."""
        self.fill(templates[self.w.branch(len(templates))], **fields)

    def write_place(self) -> None:
        if self.place is None:
            self.place = self.pick(PLACES)
        else:
            self.w.text(self.place)

    def person(self, c: Character) -> dict:
        """The template fields of a character: name, kind, article + trait, pronouns."""
        return {"n": lambda: c.write_name(self.w), "k": lambda: c.write_kind(self.w),
                "at": lambda: c.write_trait(self.w), "t": lambda: c.write_trait(self.w, article=False),
                "s": lambda: self.w.text(c.subject), "He": lambda: self.w.text(c.subject.capitalize()),
                "o": lambda: self.w.text(c.object), "p": lambda: self.w.text(c.possessive),
                "P": lambda: self.w.text(c.possessive.capitalize())}

    def sentence(self, template: str, **fields) -> None:
        self.w.text(" ")
        self.fill(template, **fields)

    def quote(self, who: Character, words: str, question: bool = False, **fields) -> None:
        """A line of dialogue, the speaker named before or after it."""
        verbs = ASK_VERBS if question else SAY_VERBS
        closed = words.rstrip()[-1] in "?!."  # the words end a sentence themselves: no mark added
        self.w.text(" ")
        if self.w.chance(0.5):  # "Words," said Name.
            self.w.text('"')
            self.fill(words, **fields)
            if not closed:
                self.w.choose(["?"] if question else [",", "!"], None if question else (2, 1))
            self.w.text('" ')
            self.pick(verbs)
            self.w.text(f" {who.name}.")
        else:  # Name said, "Words."
            self.w.text(f"{who.name} ")
            self.pick(verbs)
            self.w.text(', "')
            self.fill(words, **fields)
            if not closed:
                self.w.choose(["?"] if question else [".", "!"], None if question else (2, 1))
            self.w.text('"')

    def feel(self, who: Character, mood: str) -> None:
        fields = {"n": who.name, "s": who.subject.capitalize(), "o": who.object, "f": self.choice(FEELINGS[mood])}
        self.w.text(" ")
        self.template(["{n} felt {f}.", "{n} was very {f}.", "{s} felt so {f}.", "This made {o} feel {f}."],
                      **fields)

    # -- the story ----------------------------------------------------------------------------
    def write(self) -> None:
        self.opening()
        self.meet_friend()
        self.plot()
        if self.w.chance(0.3):
            self.plot()
        self.ending()

    def opening(self) -> None:
        h = self.hero
        self.template(OPENINGS, **self.person(h), place=self.write_place, time=self.choice(TIMES),
                      town=self.choice(TOWNS))
        self.w.text(" ")
        self.template(LIKES, **self.person(h), act=self.choice(ACTIVITIES))
        if self.w.chance(0.5):
            self.sentence("{He} lived at number {house} on {street}.", He=h.subject.capitalize(),
                          house=self.write_house, street=self.choice(STREETS))
        if self.w.chance(0.7):
            self.sentence("{He} had {thing} that {s} {love}.", **self.person(h), thing=self.write_thing,
                          love=self.choice(["loved", "liked very much", "took everywhere"]))

    def write_house(self) -> None:
        self.house = self.pick(HOUSE_NUMBERS)

    def write_thing(self) -> None:
        """The hero's treasured thing, "a red ball", chosen once (colour and object)."""
        colour = self.pick([f"{'an' if c[0] in 'aeiou' else 'a'} {c}" for c in COLOURS])
        self.w.text(" ")
        self.colour_thing = (colour.split(" ", 1)[1], self.pick(OBJECTS))

    def thing(self) -> str:
        """The thing's name (choosing it now if the story had not shown it yet)."""
        if self.colour_thing is None:
            self.colour_thing = (None, self.pick(OBJECTS))
            return self.colour_thing[1]
        self.w.text(self.colour_thing[1])
        return self.colour_thing[1]

    def meet_friend(self) -> None:
        h, f = self.hero, self.friend
        friend = self.person(f)
        fields = {"n": h.name, "f": friend["n"], "k": friend["k"], "at": friend["at"], "place": self.write_place}
        self.w.text(" ")
        self.template(MEETINGS, **fields)
        self.quote(f, GREETINGS[self.w.branch(len(GREETINGS))], n=h.name, place=self.write_place)
        self.quote(h, REPLIES[self.w.branch(len(REPLIES))], n=f.name, act=self.choice(ACTIVITIES))

    def plot(self) -> None:
        getattr(self, "plot_" + PLOTS[self.w.branch(len(PLOTS))])()

    def plot_lost(self) -> None:
        h, f = self.hero, self.friend
        self.sentence("One day, {n} could not find {p} {thing}.", n=h.name, p=h.possessive, thing=self.thing)
        self.feel(h, "sad")
        self.quote(h, "Where is my {thing}", question=True, thing=self.colour_thing[1])
        self.sentence("{f} helped {o} look {where}.", f=f.name, o=h.object,
                      where=self.choice(["everywhere", "all around", "high and low"]))
        self.sentence("At last, {f} found the {thing} {spot}.", f=f.name, thing=self.colour_thing[1],
                      spot=self.choice(HIDING_SPOTS))
        self.quote(h, "Thank you, {f}! You found my {thing}", f=f.name, thing=self.colour_thing[1])
        self.feel(h, "happy")

    def plot_storm(self) -> None:
        h, f = self.hero, self.friend
        self.sentence("Suddenly, {weather}.", weather=self.choice(WEATHER))
        self.feel(h, "scared")
        self.quote(h, "What should we do", question=True)
        self.quote(f, "Let us hide {shelter}", shelter=self.choice(SHELTERS))
        self.sentence("They waited together until the sky was {sky} again.",
                      sky=self.choice(["clear", "blue", "quiet", "bright"]))
        self.feel(h, "calm")

    def plot_race(self) -> None:
        h, f = self.hero, self.friend
        goal = []
        self.quote(f, "Let us race to the {goal}", goal=lambda: goal.append(self.pick(LANDMARKS)))
        self.sentence("{n} and {f} ran as fast as they could.", n=h.name, f=f.name)
        if self.w.chance(0.5):
            self.sentence("{n} won the race, but {s} waited for {f} at the {goal}.", n=h.name, s=h.subject,
                          f=f.name, goal=goal[0])
            self.quote(f, "You are so fast")
        else:
            self.sentence("{f} won the race. {n} was a little sad, but then {s} smiled.", f=f.name, n=h.name,
                          s=h.subject)
            self.quote(h, "Good job! Let us race again tomorrow")
        self.feel(h, "happy")

    def plot_share(self) -> None:
        h, f = self.hero, self.friend
        self.sentence("{f} saw the {thing} and wanted to play with it too.", f=f.name, thing=self.thing)
        self.quote(f, "Can I play with your {thing}", question=True, thing=self.colour_thing[1])
        if self.w.chance(0.6):
            self.sentence("At first, {n} did not want to share.", n=h.name)
            self.feel(h, "angry")
            self.sentence("Then {s} saw that {f} was sad, and {s} changed {p} mind.", s=h.subject, f=f.name,
                          p=h.possessive)
        self.quote(h, "Yes, we can play with it together")
        self.sentence("They played with the {thing} all {when} long.", thing=self.colour_thing[1],
                      when=self.choice(["day", "afternoon", "morning"]))
        self.sentence("Sharing made them both {f}.", f=self.choice(FEELINGS["happy"]))

    def plot_dark(self) -> None:
        h, f = self.hero, self.friend
        self.sentence("When night came, the {place} became very dark.", place=self.write_place)
        self.sentence("{n} heard a strange sound: {sound}!", n=h.name, sound=self.choice(SOUNDS))
        self.feel(h, "scared")
        self.quote(h, "Who is there", question=True)
        self.sentence("It was only {visitor}.", visitor=self.choice(NIGHT_VISITORS))
        self.quote(f, "See? There is nothing to be afraid of")
        self.sentence("{n} laughed, and {s} was not scared of the dark any more.", n=h.name, s=h.subject)

    def plot_bake(self) -> None:
        h, f = self.hero, self.friend
        food = []
        self.sentence("{n} and {f} wanted to make {food} for {who}.", n=h.name, f=f.name,
                      food=lambda: food.append(self.pick(FOODS)), who=self.choice(RELATIVES))
        steps = list(BAKING_STEPS)
        self.w.text(" First they ")
        for i, word in enumerate(("Then", "Last,")):  # three different steps, in the order picked
            steps.remove(self.pick(steps))
            self.w.text(f". {word} they ")
        steps.remove(self.pick(steps))
        self.w.text(".")
        if self.w.chance(0.5):
            self.sentence("Oh no! {f} dropped the {what} on the floor.", f=f.name,
                          what=self.choice(["flour", "eggs", "sugar", "bowl"]))
            self.quote(h, "It is okay. We can clean it up and try again")
        dish = food[0].split(" ", 1)[1] if food[0].startswith("a ") else food[0]
        self.sentence("The {dish} {how}.", dish=dish, how=self.choice(["smelled so good", "looked wonderful",
                                                                       "tasted sweet"]))
        self.feel(h, "proud")

    def plot_help(self) -> None:
        h = self.hero
        other = Character(exclude=h)
        self.sentence("Then {n} saw {at} {k} named {o}.", n=h.name, at=lambda: other.write_trait(self.w),
                      k=lambda: other.write_kind(self.w), o=lambda: other.write_name(self.w))
        self.sentence("{He} {trouble}.", He=other.subject.capitalize(), trouble=self.choice(TROUBLES))
        self.quote(other, "Please help me")
        self.sentence("{n} was {t}, so {s} {action}.", n=h.name, t=lambda: h.write_trait(self.w, article=False),
                      s=h.subject, action=self.choice(HELP_ACTIONS))
        self.quote(other, "Thank you, {n}. You are a good friend", n=h.name)
        self.feel(h, "proud")

    def plot_learn(self) -> None:
        h, f = self.hero, self.friend
        skill = []
        self.sentence("{n} wanted to learn to {skill}, but it was hard.", n=h.name,
                      skill=lambda: skill.append(self.pick(SKILLS)))
        self.sentence("The first time, {s} {oops}.", s=h.subject,
                      oops=self.choice(["fell down", "made a mistake", "got it all wrong"]))
        self.feel(h, "sad")
        self.quote(f, "Do not give up. Try again")
        self.sentence("{n} tried again and again. At last, {s} could {skill}!", n=h.name, s=h.subject, skill=skill[0])
        self.feel(h, "proud")

    def plot_birthday(self) -> None:
        h, f = self.hero, self.friend
        self.sentence("It was {f}'s birthday, and {n} wanted to give {o} a present.", f=f.name, n=h.name, o=f.object)
        self.sentence("{He} {made} {gift} for {o}.", He=h.subject.capitalize(),
                      made=self.choice(["made", "found", "painted", "picked"]), gift=self.choice(GIFTS), o=f.object)
        self.quote(h, "Happy birthday, {f}! This is for you", f=f.name)
        self.sentence("{f} opened it and {how}.", f=f.name,
                      how=self.choice(["smiled", "clapped", "jumped up and down", f"gave {h.name} a big hug"]))
        self.feel(f, "happy")

    def plot_treasure(self) -> None:
        h, f = self.hero, self.friend
        self.sentence("One day, {n} found an old map {spot}.", n=h.name, spot=self.choice(HIDING_SPOTS))
        self.quote(h, "Look! It is a treasure map")
        self.sentence("{n} and {f} followed the map past the {a} and over the {b}.", n=h.name, f=f.name,
                      a=self.choice(LANDMARKS), b=self.choice(LANDMARKS))
        self.sentence("At the end of the map, they found {prize}.", prize=self.choice(TREASURES))
        self.feel(h, "surprised")
        self.quote(f, "This is the best day ever")

    def plot_count(self) -> None:
        h, f = self.hero, self.friend
        what = []
        self.sentence("{n} and {f} counted the {what} at the {place}.", n=h.name, f=f.name,
                      what=lambda: what.append(self.pick(COUNTED)), place=self.write_place)
        self.sentence("There were {number} {what}!", number=self.choice(NUMBERS), what=what[0])
        self.quote(f, "That is a lot of {what}", what=what[0])
        self.feel(h, "surprised")

    def ending(self) -> None:
        h, f = self.hero, self.friend
        self.w.text(" ")
        endings = ENDINGS + (["{n} and {f} walked back to number {house} together."] if self.house else [])
        self.template(endings, n=h.name, f=f.name, p=h.possessive, place=self.write_place,
                      th=lambda: self.thing(), house=self.house or "")
        if self.w.chance(0.35):
            self.w.text(" ")
            self.pick(MORALS)


def write_story(w: Writer) -> None:
    """The story grammar: one story (a document) written through ``w``."""
    StoryWriter(w).write()
