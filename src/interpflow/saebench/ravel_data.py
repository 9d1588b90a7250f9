"""The RAVEL evaluation's offline data, written for this project: cities and three of their attributes
(country, continent, language), and prompt templates that ask for one attribute of a city.

SAEBench reads RAVEL's released city set (thousands of cities, dozens of templates per attribute);
this is a small stand-in of well-known cities that a small model may know. Users with network can
pass RAVEL's own files in the same shape (saebench.ravel.entities: a JSON/JSONL of
{"entity": ..., "<Attribute>": ...} rows).
"""

from __future__ import annotations

# city: (country, continent, language)
CITIES: dict[str, tuple[str, str, str]] = {
    "Paris": ("France", "Europe", "French"),
    "Lyon": ("France", "Europe", "French"),
    "Marseille": ("France", "Europe", "French"),
    "Berlin": ("Germany", "Europe", "German"),
    "Munich": ("Germany", "Europe", "German"),
    "Hamburg": ("Germany", "Europe", "German"),
    "Madrid": ("Spain", "Europe", "Spanish"),
    "Barcelona": ("Spain", "Europe", "Spanish"),
    "Seville": ("Spain", "Europe", "Spanish"),
    "Rome": ("Italy", "Europe", "Italian"),
    "Milan": ("Italy", "Europe", "Italian"),
    "Naples": ("Italy", "Europe", "Italian"),
    "Venice": ("Italy", "Europe", "Italian"),
    "Lisbon": ("Portugal", "Europe", "Portuguese"),
    "Porto": ("Portugal", "Europe", "Portuguese"),
    "Amsterdam": ("Netherlands", "Europe", "Dutch"),
    "Rotterdam": ("Netherlands", "Europe", "Dutch"),
    "Warsaw": ("Poland", "Europe", "Polish"),
    "Krakow": ("Poland", "Europe", "Polish"),
    "Athens": ("Greece", "Europe", "Greek"),
    "Stockholm": ("Sweden", "Europe", "Swedish"),
    "Moscow": ("Russia", "Europe", "Russian"),
    "London": ("England", "Europe", "English"),
    "Manchester": ("England", "Europe", "English"),
    "Tokyo": ("Japan", "Asia", "Japanese"),
    "Osaka": ("Japan", "Asia", "Japanese"),
    "Kyoto": ("Japan", "Asia", "Japanese"),
    "Beijing": ("China", "Asia", "Chinese"),
    "Shanghai": ("China", "Asia", "Chinese"),
    "Seoul": ("Korea", "Asia", "Korean"),
    "Busan": ("Korea", "Asia", "Korean"),
    "Bangkok": ("Thailand", "Asia", "Thai"),
    "Hanoi": ("Vietnam", "Asia", "Vietnamese"),
    "Jakarta": ("Indonesia", "Asia", "Indonesian"),
    "Tehran": ("Iran", "Asia", "Persian"),
    "Istanbul": ("Turkey", "Asia", "Turkish"),
    "Ankara": ("Turkey", "Asia", "Turkish"),
    "Delhi": ("India", "Asia", "Hindi"),
    "Mumbai": ("India", "Asia", "Hindi"),
    "Cairo": ("Egypt", "Africa", "Arabic"),
    "Alexandria": ("Egypt", "Africa", "Arabic"),
    "Casablanca": ("Morocco", "Africa", "Arabic"),
    "Nairobi": ("Kenya", "Africa", "Swahili"),
    "Lagos": ("Nigeria", "Africa", "English"),
    "Johannesburg": ("South Africa", "Africa", "English"),
    "Dakar": ("Senegal", "Africa", "French"),
    "Toronto": ("Canada", "North America", "English"),
    "Montreal": ("Canada", "North America", "French"),
    "Vancouver": ("Canada", "North America", "English"),
    "Chicago": ("United States", "North America", "English"),
    "Boston": ("United States", "North America", "English"),
    "Houston": ("United States", "North America", "English"),
    "Mexico City": ("Mexico", "North America", "Spanish"),
    "Guadalajara": ("Mexico", "North America", "Spanish"),
    "Havana": ("Cuba", "North America", "Spanish"),
    "Lima": ("Peru", "South America", "Spanish"),
    "Bogota": ("Colombia", "South America", "Spanish"),
    "Santiago": ("Chile", "South America", "Spanish"),
    "Buenos Aires": ("Argentina", "South America", "Spanish"),
    "Caracas": ("Venezuela", "South America", "Spanish"),
    "Rio de Janeiro": ("Brazil", "South America", "Portuguese"),
    "Sao Paulo": ("Brazil", "South America", "Portuguese"),
    "Brasilia": ("Brazil", "South America", "Portuguese"),
    "Sydney": ("Australia", "Oceania", "English"),
    "Melbourne": ("Australia", "Oceania", "English"),
    "Perth": ("Australia", "Oceania", "English"),
    "Auckland": ("New Zealand", "Oceania", "English"),
    "Wellington": ("New Zealand", "Oceania", "English"),
}
ATTRIBUTES = ("Country", "Continent", "Language")

# attribute: templates; the city is the last thing before the question part, so its final token is
# the position SAEBench intervenes on
TEMPLATES: dict[str, list[str]] = {
    "Country": [
        "{entity} is a city in the country of",
        "The city of {entity} is located in the country of",
        "Q: Which country is {entity} in?\nA:",
        "{entity} is the name of a city in",
    ],
    "Continent": [
        "{entity} is a city on the continent of",
        "The city of {entity} lies on the continent of",
        "Q: On which continent is {entity}?\nA:",
        "{entity} is located on the continent of",
    ],
    "Language": [
        "In {entity}, most people speak",
        "The main language spoken in {entity} is",
        "Q: What language do people speak in {entity}?\nA:",
        "People in {entity} usually speak the language called",
    ],
}


def ravel_rows() -> list[dict]:
    """One row per (city, attribute, template): entity, attribute, template_id, text, label."""
    rows = []
    for city, values in CITIES.items():
        for attribute, value in zip(ATTRIBUTES, values):
            for template_id, template in enumerate(TEMPLATES[attribute]):
                rows.append({"entity": city, "attribute": attribute, "template_id": template_id,
                             "text": template.format(entity=city), "entity_text": template.split("{entity}")[0] + city,
                             "label": value})
    return rows
