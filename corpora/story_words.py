"""The words the story grammar (``story_grammar``) draws from: cast, places, objects, plots' props,
and the sentence templates, with ``{field}`` slots the grammar fills as it writes."""

from __future__ import annotations


def _words(text: str) -> list[str]:
    """A word list written compactly as ``"a|b|c"`` (spaces inside an entry are kept)."""
    return [w.strip() for w in text.split("|") if w.strip()]


# Names are built from syllables: a consonant and a vowel, then a gendered ending, so every name
# is one string, the endings tell girls' names from boys' (the grammar stays unambiguous: a name
# fixes its character's pronouns), and 3,400 names give a tokenizer of 10,000 plenty to merge.
NAME_STARTS = [c + v for c in "BDFGHJKLMNPRSTVWZ" for v in "aeiou"]
GIRL_ENDINGS = _words("la|na|ra|lia|mira|ssa|nda|ette|lie|rine|ya|elle|ina|isa|ora|ana|tha|wen|ria|lyn")
BOY_ENDINGS = _words("ko|ron|rik|lan|tor|mo|dan|rus|ben|vin|ro|den|mar|nik|las|ton|go|bert|lio|sen")
GIRL_NAMES = [s + e for s in NAME_STARTS for e in GIRL_ENDINGS]
BOY_NAMES = [s + e for s in NAME_STARTS for e in BOY_ENDINGS]
TOWN_STARTS = _words("Oak|Pine|Maple|Willow|Stone|River|Sunny|Apple|Clover|Amber|Honey|Misty|Silver|Rose|"
                     "Cedar|Fern|Meadow|Copper|Berry|Frost")
TOWN_ENDS = _words("ville|brook|field|wood|haven|dale|ford|port|hill|bury")
TOWNS = [s + e for s in TOWN_STARTS for e in TOWN_ENDS]
STREETS = [f"{s} {kind}" for s in TOWN_STARTS for kind in ("Street", "Lane", "Road")]
HOUSE_NUMBERS = [str(n) for n in range(1, 10_000)]
COUNTED = _words("stars|shells|ducks|apples|flowers|stones|birds|clouds|boats|leaves")
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
OPENINGS = _words("Once upon a time, there was {at} {k} named {n}.|"
                  "Once upon a time, near a big {place}, there lived {at} {k} called {n}.|"
                  "One {time}, {at} {k} named {n} went to the {place}.|"
                  "{n} was {at} {k} who lived near the {place}.|"
                  "There once was {at} {k}. The {k} was called {n}.|"
                  "Every day, {n} the {k} went to the {place}.|"
                  "In the town of {town}, there lived {at} {k} named {n}.|"
                  "It was a {time}. {n} the {k} woke up early.")
LIKES = _words("{He} loved {act}.|{He} liked {act} more than anything.|Most of all, {s} wanted {act}.|"
               "{He} always wanted {act} with {p} friends.|Every day, {s} tried {act}.")
MEETINGS = _words("At the {place}, {n} met {at} {k} named {f}.|"
                  "On the way, {n} saw {f} the {k}.|"
                  "{n} had a friend, {at} {k} called {f}.|"
                  "Soon, {f} the {k} came to play.|"
                  "Near the {place}, {n} found {f}, {at} {k}.")
GREETINGS = _words("Hello, {n}|Hi, {n}! Do you want to play?|Good morning, {n}|"
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
PLOTS = _words("lost|storm|race|share|dark|bake|help|learn|birthday|treasure|count")
NUMBERS = [str(n) for n in range(2, 500)]
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
