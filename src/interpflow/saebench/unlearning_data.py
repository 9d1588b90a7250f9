"""The unlearning evaluation's offline data, written for this project: a forget topic (astronomy) and
retain topics (geography, history, cooking), each as a short text corpus and as multiple-choice
questions with four options.

SAEBench forgets WMDP-bio (`cais/wmdp`, config `wmdp-bio`, split `test`; its forget corpus is the
gated `bio-forget-corpus` of `cais/wmdp-corpora`) and retains four MMLU subjects (`cais/mmlu`:
high_school_us_history, college_computer_science, high_school_geography, human_aging; retain corpus
WikiText-2 `wikitext-2-raw-v1`, split `test`). Users with network can export those (or any other
set) and point the evaluation at them: questions as parquet / JSONL / JSON with the columns
`question`, `choices` (four strings), `answer` (index of the right choice) and optionally `subject`;
corpora as a text file (one document per line), or parquet / JSONL with a `text` column.

Questions here are easy on purpose: the evaluation only scores questions the model answers right in
every order of the choices, and a 135M model knows little.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interpflow.data import user_files

FORGET_SUBJECT = "astronomy"

# subject: (question, right answer, three wrong answers); the right answer's place among the choices
# is set by `mcq_rows` so that A, B, C and D are each right for a quarter of the questions
QUESTIONS: dict[str, list[tuple[str, str, tuple[str, str, str]]]] = {
    "astronomy": [
        ("What is the closest star to Earth?", "The Sun", ("Sirius", "Polaris", "Vega")),
        ("Which planet is known as the Red Planet?", "Mars", ("Venus", "Jupiter", "Saturn")),
        ("What is the largest planet in our solar system?", "Jupiter", ("Mercury", "Mars", "Earth")),
        ("Which planet does the Moon orbit?", "Earth", ("Mars", "Jupiter", "Venus")),
        ("Which planet is famous for its large, bright rings?", "Saturn", ("Mercury", "Mars", "Venus")),
        ("What is the name of the galaxy we live in?", "The Milky Way", ("The Sahara", "The Pacific", "The Amazon")),
        ("Which planet is closest to the Sun?", "Mercury", ("Neptune", "Saturn", "Uranus")),
        ("What force keeps the planets in orbit around the Sun?", "Gravity", ("Friction", "Wind", "Magnetism")),
        ("How long does it take Earth to travel once around the Sun?", "About one year",
         ("About one hour", "About one day", "About one week")),
        ("How long does it take Earth to spin once on its axis?", "About one day",
         ("About one year", "About one month", "About one century")),
        ("What is a shooting star?", "A meteor burning up in the atmosphere",
         ("A bird flying at night", "A lamp on a mountain", "A cloud full of rain")),
        ("What do astronomers use to look at distant stars?", "A telescope", ("A microscope", "A thermometer", "A stethoscope")),
        ("What is the Sun?", "A star", ("A planet", "A moon", "A comet")),
        ("Which planet do humans live on?", "Earth", ("Mars", "Venus", "Jupiter")),
        ("What is a group of stars that forms a pattern in the night sky called?", "A constellation",
         ("An island", "A continent", "A river")),
        ("Who was the first person to walk on the Moon?", "Neil Armstrong",
         ("Napoleon Bonaparte", "William Shakespeare", "Christopher Columbus")),
        ("Why does the Moon shine at night?", "It reflects light from the Sun",
         ("It burns wood", "It is covered in lamps", "It is made of glowing lava")),
        ("What is a comet mostly made of?", "Ice and dust", ("Gold and silver", "Wood and paper", "Plastic and glass")),
        ("Which planet is famous for its Great Red Spot, a giant storm?", "Jupiter", ("Mercury", "Venus", "Earth")),
        ("Which is the hottest planet in the solar system?", "Venus", ("Neptune", "Uranus", "Pluto")),
        ("How many planets are in our solar system?", "Eight", ("Three", "Twenty", "One hundred")),
        ("What are the rocky bodies that orbit the Sun between Mars and Jupiter called?", "Asteroids",
         ("Volcanoes", "Glaciers", "Canyons")),
        ("What is a black hole?", "A region of space where gravity is so strong that not even light can escape",
         ("A hole dug in the ground", "A dark cave in a mountain", "A deep trench in the ocean")),
        ("What is the name of the space agency of the United States?", "NASA", ("FIFA", "UNICEF", "NATO")),
        ("What is an astronaut?", "A person trained to travel into space",
         ("A person who grows vegetables", "A person who cooks in a restaurant", "A person who repairs shoes")),
        ("What causes day and night on Earth?", "Earth spinning on its axis",
         ("Clouds covering the Sun", "The Moon blocking the Sun", "The Sun turning off")),
        ("What happens during a solar eclipse?", "The Moon blocks the light of the Sun",
         ("Rain falls from the sky", "Snow covers the ground", "The tide rises on the beach")),
        ("What is a light-year?", "The distance light travels in one year",
         ("A unit of weight", "A kind of calendar", "A type of lamp")),
        ("Which planet is farthest from the Sun?", "Neptune", ("Mercury", "Venus", "Earth")),
        ("What shape are planets?", "Roughly round, like a ball",
         ("Square, like a box", "Flat, like a plate", "Triangular, like a slice")),
        ("What is the name of Earth's natural satellite?", "The Moon", ("Titan", "Europa", "Phobos")),
        ("Which planet is the second largest in the solar system?", "Saturn", ("Mercury", "Mars", "Earth")),
        ("What is the huge explosion of a dying star called?", "A supernova", ("A rainbow", "A tornado", "A tsunami")),
        ("What is the Sun mostly made of?", "Hydrogen and helium", ("Iron and rock", "Water and salt", "Wood and coal")),
        ("What do we call a scientist who studies stars and planets?", "An astronomer", ("A botanist", "A chef", "A plumber")),
        ("What is the Moon called when we can see its whole face lit?", "A full moon",
         ("A new moon", "A blue sky", "A dark moon")),
        ("What does the Hubble Space Telescope take pictures of?", "Distant stars and galaxies",
         ("Fish in the ocean", "Cars on highways", "Birds in forests")),
        ("What is the International Space Station?", "A laboratory orbiting Earth where astronauts live",
         ("A train station in Paris", "An airport in London", "A bus stop in Tokyo")),
        ("On which planet is Olympus Mons, the tallest volcano in the solar system?", "Mars", ("Earth", "Mercury", "Neptune")),
        ("Which dwarf planet was once called the ninth planet?", "Pluto", ("Atlantis", "Paris", "Everest")),
        ("What are Saturn's rings mostly made of?", "Pieces of ice and rock", ("Gold coins", "Paper", "Fire")),
        ("What is a galaxy?", "A huge group of stars, gas and dust held together by gravity",
         ("A single small rock", "A type of rain cloud", "A large city")),
        ("How does the Sun make its energy?", "Nuclear fusion in its core",
         ("Burning coal", "Wind turbines", "Batteries")),
        ("What is the Big Bang?", "The event that began the expansion of the universe",
         ("A loud rock concert", "A fireworks show", "A thunderstorm over the sea")),
        ("What do we call the path a planet follows around the Sun?", "Its orbit", ("Its tail", "Its root", "Its shadow")),
        ("What shields Earth from much of the Sun's harmful radiation?", "Its atmosphere and magnetic field",
         ("Its mountains", "Its forests", "Its deserts")),
        ("What is a giant cloud of gas and dust in space where stars are born called?", "A nebula",
         ("A desert", "A lake", "A forest")),
        ("Which planet looks blue because of methane in its atmosphere?", "Neptune", ("Mars", "Mercury", "Venus")),
        ("Which planet is called Earth's twin because of its similar size?", "Venus", ("Jupiter", "Saturn", "Neptune")),
        ("What do we see when the Moon passes into Earth's shadow?", "A lunar eclipse",
         ("A rainbow", "A sunrise", "An earthquake")),
        ("Which rocket carried the Apollo astronauts to the Moon?", "The Saturn V",
         ("A hot-air balloon", "A submarine", "A bicycle")),
        ("What is the boundary around a black hole from which nothing can return called?", "The event horizon",
         ("The prime meridian", "The coastline", "The Tropic of Cancer")),
        ("Which planet has Ganymede, the largest moon in the solar system?", "Jupiter", ("Earth", "Mars", "Venus")),
        ("How many moons does Earth have?", "One", ("Seven", "Twenty", "One hundred")),
        ("In which direction does the Sun rise?", "East", ("West", "North", "South")),
        ("Which star did sailors use to find north at night?", "Polaris, the North Star", ("Mars", "The Moon", "Venus")),
        ("What is a planet?", "A large round body that orbits a star",
         ("A small insect", "A type of fruit", "A musical instrument")),
        ("What is the outer layer of gas around a planet called?", "Its atmosphere", ("Its crust", "Its core", "Its ocean")),
        ("Which object in the sky is a huge ball of hot, glowing gas?", "A star", ("A moon", "A cloud", "A kite")),
        ("What did Galileo point at the sky to discover the moons of Jupiter?", "A telescope",
         ("A compass", "A hammer", "A microphone")),
    ],
    "geography": [
        ("What is the capital of France?", "Paris", ("Berlin", "Madrid", "Rome")),
        ("What is the largest ocean on Earth?", "The Pacific Ocean",
         ("The Atlantic Ocean", "The Indian Ocean", "The Arctic Ocean")),
        ("On which continent is Egypt?", "Africa", ("Europe", "South America", "Australia")),
        ("What is the longest river in Africa?", "The Nile", ("The Thames", "The Seine", "The Danube")),
        ("What is the capital of Japan?", "Tokyo", ("Beijing", "Seoul", "Bangkok")),
        ("Which is the largest country by area?", "Russia", ("Belgium", "Portugal", "Cuba")),
        ("What is the tallest mountain in the world?", "Mount Everest", ("Mont Blanc", "Kilimanjaro", "Mount Fuji")),
        ("Which desert covers much of northern Africa?", "The Sahara", ("The Gobi", "The Atacama", "The Mojave")),
        ("What is the capital of Italy?", "Rome", ("Paris", "Vienna", "Lisbon")),
        ("In which country is the city of Sydney?", "Australia", ("Canada", "Brazil", "India")),
        ("What is the capital of the United Kingdom?", "London", ("Dublin", "Edinburgh", "Paris")),
        ("Which river flows through Paris?", "The Seine", ("The Thames", "The Nile", "The Mississippi")),
        ("Which country is shaped like a boot?", "Italy", ("Germany", "Norway", "Poland")),
        ("What is the capital of Germany?", "Berlin", ("Munich", "Vienna", "Warsaw")),
        ("On which continent is Brazil?", "South America", ("Asia", "Europe", "Africa")),
        ("What is the capital of Spain?", "Madrid", ("Barcelona", "Lisbon", "Rome")),
        ("Which ocean lies between Europe and North America?", "The Atlantic Ocean",
         ("The Pacific Ocean", "The Indian Ocean", "The Southern Ocean")),
        ("What is the capital of Canada?", "Ottawa", ("Toronto", "Vancouver", "Montreal")),
        ("What is the largest continent?", "Asia", ("Europe", "Australia", "Antarctica")),
        ("Which country is home to the Great Pyramids of Giza?", "Egypt", ("Mexico", "China", "Peru")),
        ("What is the capital of Russia?", "Moscow", ("Kyiv", "Warsaw", "Prague")),
        ("In which country is the Eiffel Tower?", "France", ("England", "Spain", "Italy")),
        ("What is the capital of China?", "Beijing", ("Shanghai", "Tokyo", "Hong Kong")),
        ("Which mountains separate France and Spain?", "The Pyrenees", ("The Alps", "The Andes", "The Rockies")),
        ("What is the capital of Egypt?", "Cairo", ("Rabat", "Nairobi", "Lagos")),
        ("Which US state is made up of islands in the Pacific Ocean?", "Hawaii", ("Texas", "Ohio", "Nevada")),
        ("Which imaginary line divides Earth into northern and southern halves?", "The equator",
         ("The prime meridian", "The International Date Line", "The Arctic Circle")),
        ("What is the capital of India?", "New Delhi", ("Mumbai", "Kolkata", "Karachi")),
        ("In which country is the city of Toronto?", "Canada", ("The United States", "Mexico", "Australia")),
        ("Which is the coldest continent?", "Antarctica", ("Africa", "Australia", "South America")),
    ],
    "history": [
        ("Who was the first president of the United States?", "George Washington",
         ("Abraham Lincoln", "Thomas Jefferson", "John Adams")),
        ("In which year did World War II end?", "1945", ("1918", "1865", "1776")),
        ("Which ancient people built the pyramids of Giza?", "The ancient Egyptians", ("The Vikings", "The Aztecs", "The Incas")),
        ("Julius Caesar was a famous leader of which ancient state?", "Rome", ("Egypt", "China", "The Aztec Empire")),
        ("Which wall divided the city of Berlin until 1989?", "The Berlin Wall",
         ("The Great Wall", "Hadrian's Wall", "The Western Wall")),
        ("Who was the British prime minister during most of World War II?", "Winston Churchill",
         ("Margaret Thatcher", "Tony Blair", "Queen Victoria")),
        ("Which ship sank in 1912 after hitting an iceberg?", "The Titanic", ("The Mayflower", "The Santa Maria", "The Beagle")),
        ("Who sailed across the Atlantic in 1492 in a voyage paid for by Spain?", "Christopher Columbus",
         ("Marco Polo", "James Cook", "Vasco da Gama")),
        ("Which war was fought between the northern and southern states of the United States?", "The American Civil War",
         ("The Hundred Years' War", "The Vietnam War", "The Korean War")),
        ("Who led India's independence movement through nonviolent protest?", "Mahatma Gandhi",
         ("Napoleon Bonaparte", "Vladimir Lenin", "Julius Caesar")),
        ("In which country did the ancient Olympic Games begin?", "Greece", ("Japan", "Brazil", "Canada")),
        ("Who was the last active ruler of ancient Egypt, allied with Mark Antony?", "Cleopatra",
         ("Queen Victoria", "Elizabeth I", "Marie Antoinette")),
        ("Which empire did Genghis Khan found?", "The Mongol Empire",
         ("The Roman Empire", "The British Empire", "The Inca Empire")),
        ("Who painted the Mona Lisa?", "Leonardo da Vinci", ("Pablo Picasso", "Vincent van Gogh", "Claude Monet")),
        ("Which American president issued the Emancipation Proclamation?", "Abraham Lincoln",
         ("George Washington", "Richard Nixon", "Barack Obama")),
        ("In which year did World War I begin?", "1914", ("1492", "1776", "2001")),
        ("What was the ancient trade route between China and the Mediterranean called?", "The Silk Road",
         ("Route 66", "The Oregon Trail", "The Orient Express")),
        ("Which charter did King John of England agree to in 1215?", "The Magna Carta",
         ("The United States Constitution", "The Treaty of Versailles", "The Communist Manifesto")),
        ("Who was the dictator of Germany during World War II?", "Adolf Hitler",
         ("Otto von Bismarck", "Charlemagne", "Frederick the Great")),
        ("What did the Wright brothers build and fly in 1903?", "The first successful powered airplane",
         ("The first telephone", "The first light bulb", "The first printing press")),
        ("Who built the first printing press with movable type in Europe?", "Johannes Gutenberg",
         ("Thomas Edison", "Isaac Newton", "Albert Einstein")),
        ("Which country gave the Statue of Liberty to the United States?", "France", ("Germany", "Japan", "Russia")),
        ("In which country did the Industrial Revolution begin?", "Great Britain", ("Brazil", "Japan", "Egypt")),
        ("Who was the French emperor defeated at the Battle of Waterloo?", "Napoleon Bonaparte",
         ("Louis Pasteur", "Charles de Gaulle", "Victor Hugo")),
        ("Which city was buried by the eruption of Mount Vesuvius in 79 AD?", "Pompeii", ("London", "Chicago", "Madrid")),
    ],
    "cooking": [
        ("What is the main ingredient of guacamole?", "Avocado", ("Potato", "Apple", "Rice")),
        ("What makes bread dough rise?", "Yeast", ("Pepper", "Vinegar", "Ice")),
        ("At what temperature does water boil at sea level?", "100 degrees Celsius",
         ("0 degrees Celsius", "50 degrees Celsius", "500 degrees Celsius")),
        ("What is the main ingredient of an omelette?", "Eggs", ("Flour", "Rice", "Beans")),
        ("Which country is spaghetti most associated with?", "Italy", ("Japan", "Mexico", "Sweden")),
        ("What is sushi traditionally made with?", "Vinegared rice and fish",
         ("Bread and cheese", "Potatoes and gravy", "Corn and beans")),
        ("Which ingredient makes food taste salty?", "Salt", ("Sugar", "Honey", "Cinnamon")),
        ("What is butter made from?", "Cream", ("Flour", "Apples", "Rice")),
        ("What is the main ingredient of hummus?", "Chickpeas", ("Rice", "Corn", "Potatoes")),
        ("What do we call cooking food in hot oil?", "Frying", ("Freezing", "Soaking", "Chilling")),
        ("Which fruit is crushed to make wine?", "Grapes", ("Bananas", "Oranges", "Coconuts")),
        ("What are French fries made from?", "Potatoes", ("Carrots", "Apples", "Corn")),
        ("What sweet food do bees make?", "Honey", ("Vinegar", "Salt", "Butter")),
        ("What is tofu made from?", "Soybeans", ("Wheat", "Corn", "Milk")),
        ("Which spice gives curry its yellow colour?", "Turmeric", ("Black pepper", "Cinnamon", "Basil")),
        ("What is the Italian dish of flat dough baked with tomato and cheese?", "Pizza", ("Sushi", "Tacos", "Paella")),
        ("What tool measures ingredients by weight?", "A kitchen scale", ("A thermometer", "A clock", "A ruler")),
        ("Which vegetable often makes people cry when they cut it?", "An onion", ("Lettuce", "A cucumber", "A potato")),
        ("What is a traditional French baguette made from?", "Wheat flour", ("Rice", "Corn", "Potatoes")),
        ("Which drink is made from roasted beans?", "Coffee", ("Milk", "Orange juice", "Lemonade")),
        ("What is a Mexican dish of a folded tortilla with a filling called?", "A taco",
         ("A croissant", "A sushi roll", "A risotto")),
        ("What must you do to raw chicken before eating it?", "Cook it thoroughly",
         ("Freeze it", "Paint it", "Wash it in soap")),
        ("Which cheese is traditionally used on a pizza margherita?", "Mozzarella", ("Cheddar", "Feta", "Blue cheese")),
        ("What do you use to whisk eggs?", "A whisk or a fork", ("A hammer", "A pillow", "A pencil")),
        ("What is the main ingredient of a French onion soup?", "Onions", ("Bananas", "Chocolate", "Strawberries")),
    ],
}

# Short corpora for the latents' firing rates: the forget topic, and text on the retain topics
# (SAEBench's retain corpus is general text, WikiText).
CORPORA: dict[str, list[str]] = {
    "forget": [
        "The Sun is a star at the centre of our solar system, and eight planets travel around it in orbits.",
        "Mercury is the planet closest to the Sun, and a year there lasts only eighty-eight Earth days.",
        "Venus is covered in thick clouds that trap heat, which makes it the hottest planet of all.",
        "Mars looks red because its surface is covered in dust that contains iron oxide.",
        "Jupiter is a gas giant so large that more than a thousand Earths could fit inside it.",
        "Saturn is famous for its bright rings, which are made of countless pieces of ice and rock.",
        "Uranus spins on its side, so its poles point almost directly at the Sun for part of its orbit.",
        "Neptune is the farthest planet from the Sun and has the fastest winds in the solar system.",
        "The Moon orbits Earth about once a month and shows phases from new moon to full moon.",
        "A solar eclipse happens when the Moon passes between Earth and the Sun and blocks its light.",
        "Astronomers use telescopes to collect light from stars and galaxies that are very far away.",
        "A light-year is the distance that light travels in one year, nearly ten trillion kilometres.",
        "The Milky Way is a spiral galaxy that contains hundreds of billions of stars, including the Sun.",
        "Stars are born inside nebulae, huge clouds of gas and dust that collapse under their own gravity.",
        "In the core of a star, hydrogen nuclei fuse into helium and release enormous amounts of energy.",
        "When a very massive star runs out of fuel, it can explode as a supernova.",
        "A black hole is a region of space where gravity is so strong that not even light can escape.",
        "Comets are balls of ice and dust that grow glowing tails when they come close to the Sun.",
        "Most asteroids orbit the Sun in a belt between the orbits of Mars and Jupiter.",
        "A meteor is a small piece of rock that burns up in the atmosphere and looks like a shooting star.",
        "Constellations are patterns of stars, such as Orion the hunter and the Great Bear.",
        "Polaris, the North Star, sits almost directly above Earth's north pole.",
        "The Hubble Space Telescope orbits Earth and has photographed galaxies billions of light-years away.",
        "Astronauts on the International Space Station orbit Earth about sixteen times every day.",
        "In 1969 Neil Armstrong and Buzz Aldrin became the first people to walk on the Moon.",
        "Galileo used one of the first telescopes to discover four large moons orbiting Jupiter.",
        "Pluto was called the ninth planet until astronomers classified it as a dwarf planet in 2006.",
        "The universe began expanding about fourteen billion years ago in an event called the Big Bang.",
        "Red giant stars are cool and swollen, while blue stars are the hottest and burn out quickly.",
        "Olympus Mons on Mars is the tallest volcano known in the solar system.",
        "Earth's atmosphere and magnetic field protect life from harmful radiation coming from the Sun.",
        "Day and night happen because Earth spins on its axis once every twenty-four hours.",
        "The seasons change because Earth's axis is tilted as the planet travels around the Sun.",
        "A lunar eclipse happens when the Moon moves into the shadow of Earth.",
        "Ganymede, a moon of Jupiter, is the largest moon in the solar system.",
        "Neptune looks blue because methane in its atmosphere absorbs red light.",
        "The event horizon is the edge of a black hole beyond which nothing can return.",
        "Radio telescopes listen for faint signals from pulsars, quasars and distant galaxies.",
        "Planets around other stars are called exoplanets, and thousands of them have been found.",
        "The Saturn V rocket launched the Apollo astronauts on their journeys to the Moon.",
    ],
    "retain": [
        "Paris, the capital of France, stands on the river Seine and is known for the Eiffel Tower.",
        "The Pacific is the largest and deepest ocean, stretching from Asia to the Americas.",
        "The Nile flows north through Egypt and into the Mediterranean Sea.",
        "Mount Everest, on the border of Nepal and China, is the highest mountain in the world.",
        "The Sahara Desert covers much of northern Africa and is the largest hot desert on Earth.",
        "Tokyo, the capital of Japan, is one of the most populated cities in the world.",
        "Russia is the largest country by area and spans eleven time zones.",
        "The Amazon rainforest in South America is home to millions of species of plants and animals.",
        "Canada's capital is Ottawa, although Toronto is its largest city.",
        "The Alps run across France, Switzerland, Italy and Austria, and many people go there to ski.",
        "Antarctica is the coldest continent and is almost entirely covered by a thick sheet of ice.",
        "The equator divides Earth into the Northern Hemisphere and the Southern Hemisphere.",
        "Australia is both a country and a continent, and Sydney is its largest city.",
        "George Washington was the first president of the United States.",
        "The ancient Egyptians built the pyramids of Giza as tombs for their kings.",
        "Julius Caesar was a Roman general who became dictator before he was killed in 44 BC.",
        "The Magna Carta, agreed to by King John in 1215, limited the power of the English king.",
        "Johannes Gutenberg's printing press made books far cheaper to produce in Europe.",
        "Christopher Columbus crossed the Atlantic in 1492 with three ships.",
        "The Industrial Revolution began in Great Britain with steam engines and textile mills.",
        "World War I began in 1914, and World War II ended in 1945.",
        "Winston Churchill led Britain as prime minister through most of the Second World War.",
        "The Berlin Wall divided the city of Berlin from 1961 until it fell in 1989.",
        "Mahatma Gandhi led India's struggle for independence through peaceful protest.",
        "The Silk Road carried silk, spices and ideas between China and the Mediterranean.",
        "Abraham Lincoln led the United States during the Civil War and ended slavery.",
        "Leonardo da Vinci painted the Mona Lisa and filled notebooks with inventions.",
        "To make bread, mix flour, water, salt and yeast, knead the dough and let it rise.",
        "Guacamole is made by mashing ripe avocados with lime juice, onion and salt.",
        "An omelette is made by beating eggs and cooking them gently in a buttered pan.",
        "Pasta should be boiled in plenty of salted water until it is tender but still firm.",
        "Sushi combines vinegared rice with fish, seaweed and vegetables.",
        "Hummus is a dip made from chickpeas, tahini, lemon juice and garlic.",
        "Frying cooks food quickly in hot oil and gives it a crisp golden crust.",
        "Butter is made by churning cream until the fat separates from the buttermilk.",
        "Tofu is made by curdling soy milk and pressing the curds into blocks.",
        "Turmeric gives many curries their bright yellow colour.",
        "A pizza margherita is topped with tomato sauce, mozzarella and fresh basil.",
        "Roasting vegetables in a hot oven brings out their natural sweetness.",
        "Raw chicken must be cooked thoroughly before it is safe to eat.",
    ],
}

LETTERS = "ABCD"


def mcq_rows() -> pd.DataFrame:
    """The shipped questions: subject, topic (forget/retain), question, choices, answer (index)."""
    rows = []
    for subject, items in QUESTIONS.items():
        for i, (question, right, wrong) in enumerate(items):
            place = i % 4
            choices = list(wrong)
            choices.insert(place, right)
            rows.append({"subject": subject, "topic": "forget" if subject == FORGET_SUBJECT else "retain",
                         "question": question, "choices": choices, "answer": place})
    return pd.DataFrame(rows)


def read_questions(path: str, topic: str) -> pd.DataFrame:
    """A user's questions (question, choices, answer, optional subject) as `mcq_rows` gives them."""
    key = f"saebench.unlearning.{topic}_questions"
    frame = user_files.read_table(path, key, required=["question", "choices", "answer"]).reset_index(drop=True)
    for row, (choices, answer) in enumerate(zip(frame["choices"], frame["answer"])):
        if not (isinstance(choices, (list, tuple, np.ndarray)) and len(choices) == 4):
            raise user_files.problem(path, key, f"row {row} has the choices {choices!r}", "give each question a list of four choices")
        if not (isinstance(answer, (int, np.integer)) and 0 <= answer < 4):
            raise user_files.problem(path, key, f"row {row} has the answer {answer!r}",
                                     "give each question's answer as the index (0 to 3) of the right choice")
    subject = frame["subject"] if "subject" in frame.columns else Path(path).stem
    return pd.DataFrame({"subject": subject, "topic": topic, "question": frame["question"],
                         "choices": [list(c) for c in frame["choices"]], "answer": frame["answer"].astype(int)})


def read_corpus(path: str, topic: str) -> list[str]:
    """A user's corpus: one document per line of a text file, or the `text` column of a table."""
    key = f"saebench.unlearning.{topic}_corpus"
    if Path(path).suffix in (".txt", ""):
        return [line for _, line in user_files.read_lines(path, key)]
    frame = user_files.read_table(path, key, required=["text"])
    return [str(t) for t in frame["text"].dropna() if str(t).strip()]


def questions(cfg: dict) -> pd.DataFrame:
    """Forget and retain questions: the shipped ones, or the files `forget_questions` / `retain_questions` name."""
    shipped = mcq_rows()
    parts = [read_questions(cfg[f"{topic}_questions"], topic) if cfg.get(f"{topic}_questions")
             else shipped[shipped["topic"] == topic] for topic in ("forget", "retain")]
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "question_id", range(len(frame)))
    return frame


def corpora(cfg: dict) -> dict[str, list[str]]:
    """Forget and retain texts: the shipped ones, or the files `forget_corpus` / `retain_corpus` name."""
    return {topic: read_corpus(cfg[f"{topic}_corpus"], topic) if cfg.get(f"{topic}_corpus") else CORPORA[topic]
            for topic in ("forget", "retain")}
