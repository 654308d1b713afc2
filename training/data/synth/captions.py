"""Paraphrased captions: several ways to say each action, usually with the emotion in it."""

from __future__ import annotations

import numpy as np

from training.data.synth.unseen import UNSEEN_VERB_PHRASES

VERB_PHRASES: dict[str, tuple[str, ...]] = {
    "walk": ("walks forward", "is walking ahead", "takes a few steps forward", "strolls straight ahead"),
    "turn": ("turns around", "walks in a half circle", "turns on the spot", "steps around to face the other way"),
    "sit_down": ("sits down", "lowers into a seated position", "sits down on a chair", "takes a seat"),
    "wave": ("waves with the right hand", "waves hello", "raises a hand and waves", "greets someone with a wave"),
    "bow": ("bows", "bends forward in a bow", "takes a polite bow", "bows deeply and stands back up"),
    "pick_up": (
        "picks something up from the floor",
        "bends down to pick up an object",
        "squats and lifts something",
        "reaches down to grab something",
    ),
    "jog": ("jogs forward", "is running", "runs ahead at a steady pace", "jogs in a straight line"),
    "kick": ("kicks with the right leg", "kicks a ball", "swings the right leg in a kick", "does a front kick"),
    "throw": ("throws a ball", "throws something overhand", "winds up and throws", "makes a throwing motion"),
    "punch": ("punches the air", "throws punches", "boxes with both fists", "jabs left and right"),
    "stretch": (
        "stretches the arms overhead",
        "stretches and leans side to side",
        "reaches up and stretches",
        "does an overhead stretch",
    ),
    "spin": ("spins around", "twirls in place", "spins with the arms out", "turns around and around"),
    "sway": (
        "sways from side to side",
        "dances, swaying the hips",
        "rocks side to side to music",
        "sways with the arms up",
    ),
    "disco_point": (
        "does a disco point",
        "dances pointing up and down",
        "points to the sky in a disco move",
        "dances with the right arm pointing",
    ),
    "step_touch": (
        "dances with side steps",
        "steps side to side",
        "does a step touch dance",
        "steps left and right to the beat",
    ),
    "shimmy": (
        "shimmies the shoulders",
        "does a shoulder shimmy",
        "shakes the shoulders while dancing",
        "dances with bent knees and shaking shoulders",
    ),
    "present": (
        "opens the arms to present",
        "presents to the audience",
        "spreads the arms wide on stage",
        "gestures grandly to the crowd",
    ),
    "salute": ("salutes", "gives a military salute", "raises the right hand to the forehead", "stands and salutes"),
    "march": ("marches with high knees", "marches forward", "marches like a soldier", "parades with big arm swings"),
    "cheer": (
        "cheers with both arms up",
        "jumps and cheers",
        "celebrates with raised arms",
        "pumps both fists in the air",
    ),
    "clap": ("claps", "claps the hands", "applauds", "claps in front of the chest"),
    "juggle": ("juggles", "juggles balls in front of the face", "tosses and catches balls", "pretends to juggle"),
    "jump": ("jumps up and down", "jumps in place", "hops up", "does a few vertical jumps"),
    "crouch": ("crouches down", "squats low", "ducks down and hides", "crouches and stands back up"),
    "dodge": ("dodges side to side", "sidesteps to dodge", "ducks left and right", "evades by stepping sideways"),
    "aim": ("aims a bow", "takes aim", "holds an aiming pose", "aims with both arms forward"),
    "sneak": ("sneaks forward", "tiptoes forward crouched", "creeps forward quietly", "sneaks in a low crouch"),
    "tiptoe": (
        "walks on tiptoes",
        "tiptoes forward",
        "walks on the toes like a cartoon",
        "sneaks on tiptoe with bent arms",
    ),
    "stomp": ("stomps forward", "stomps heavily", "walks with big stomping steps", "stomps like a giant"),
    "flap": (
        "flaps the arms like a bird",
        "flaps both arms",
        "pretends to fly flapping the arms",
        "waves both arms up and down like wings",
    ),
    "robot_walk": (
        "walks like a robot",
        "does a robot walk",
        "moves stiffly like a robot",
        "walks with stiff robotic arms",
    ),
    "zombie_walk": (
        "walks like a zombie",
        "shuffles with the arms out in front",
        "staggers forward like a zombie",
        "drags forward with outstretched arms",
    ),
    "drum": ("plays the drums", "beats on a drum", "drums with both hands", "plays drums with sticks"),
    "guitar": ("plays the guitar", "strums a guitar", "plays an air guitar", "strums with the right hand"),
    "violin": ("plays the violin", "bows a violin", "plays a violin under the chin", "plays the fiddle"),
    "piano": ("plays the piano", "plays a keyboard", "moves the hands along piano keys", "plays piano"),
    "trumpet": ("plays the trumpet", "blows a trumpet", "plays a horn with both hands", "plays trumpet"),
    "cartwheel": ("does a cartwheel", "cartwheels sideways", "performs a cartwheel", "turns a cartwheel"),
    "backflip": ("does a backflip", "flips backwards", "performs a back somersault", "jumps into a backflip"),
    "handstand": ("does a handstand", "stands on the hands", "kicks up into a handstand", "holds a handstand"),
    "forward_roll": (
        "does a forward roll",
        "rolls forward on the ground",
        "tumbles forward",
        "does a somersault on the floor",
    ),
    "split_jump": ("does split jumps", "jumps with the legs split", "leaps with the legs apart", "does a split leap"),
}

EVERY_VERB_PHRASE = {**VERB_PHRASES, **UNSEEN_VERB_PHRASES}  # corpus v1's actions and the unseen scenarios'

EMOTION_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (adverbs, adjectives)
    "neutral": (("calmly", "normally", "casually"), ("calm", "relaxed", "composed")),
    "happy": (("happily", "cheerfully", "joyfully"), ("happy", "cheerful", "joyful")),
    "sad": (("sadly", "gloomily", "sorrowfully"), ("sad", "gloomy", "downcast")),
    "angry": (("angrily", "furiously", "aggressively"), ("angry", "furious", "irritated")),
    "fearful": (("fearfully", "nervously", "timidly"), ("scared", "fearful", "nervous")),
    "surprised": (("in surprise", "with astonishment", "in shock"), ("surprised", "astonished", "startled")),
}

WHO = ("person", "man", "woman", "figure", "character")
WITH_EMOTION = (
    "a {who} {vp} {adv}",
    "someone {vp}, looking {adj}",
    "a {adj} {who} {vp}",
    "the {who} {vp} {adv}",
    "feeling {adj}, a {who} {vp}",
)
WITHOUT_EMOTION = ("a {who} {vp}", "someone {vp}", "the {who} {vp}")


def captions(action: str, emotion: str, rng: np.random.Generator, count: int, emotion_rate: float) -> list[str]:
    """`count` different captions; each names the emotion with probability `emotion_rate`."""
    adverbs, adjectives = EMOTION_WORDS[emotion]
    phrases = EVERY_VERB_PHRASE[action]
    result: list[str] = []
    while len(result) < count:
        templates = WITH_EMOTION if rng.random() < emotion_rate else WITHOUT_EMOTION
        text = str(rng.choice(templates)).format(
            who=rng.choice(WHO), vp=rng.choice(phrases), adv=rng.choice(adverbs), adj=rng.choice(adjectives)
        )
        if text not in result or len(result) >= len(phrases) * len(WHO):
            result.append(text)
    return [text + "." for text in result]
