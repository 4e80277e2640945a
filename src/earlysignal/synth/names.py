"""Synthetic names, streets and the ways systems get them wrong.

Every list here is packaged in code (no downloads at run time) and is made of common given names,
family names and street words; any name matches no particular person. Names are drawn per ethnic
group of the synthetic borough so linkage errors can differ between groups, as they do in real data.
"""

from __future__ import annotations

import numpy as np

# Given names by group (index as people.ETHNICITIES: White, Asian, Black, Mixed, Other), female then male.
FEMALE_NAMES: tuple[tuple[str, ...], ...] = (
    ("Olivia", "Amelia", "Emily", "Jessica", "Sophie", "Charlotte", "Hannah", "Lucy", "Rebecca", "Elizabeth",
     "Katherine", "Sarah", "Laura", "Rachel", "Claire", "Victoria", "Margaret", "Susan", "Helen", "Jennifer",
     "Abigail", "Eleanor", "Grace", "Megan", "Zoe", "Natalie", "Joanne", "Patricia", "Deborah", "Samantha"),
    ("Aisha", "Fatima", "Priya", "Ayesha", "Zainab", "Maryam", "Nadia", "Sana", "Anjali", "Sunita",
     "Farida", "Shabnam", "Rukhsana", "Nasreen", "Parveen", "Kavita", "Asma", "Hafsa", "Amina", "Sadia",
     "Rehana", "Shazia", "Noor", "Samina", "Deepa", "Meena", "Salma", "Yasmin", "Rubina", "Tahmina"),
    ("Abena", "Adwoa", "Chioma", "Ngozi", "Amara", "Folasade", "Blessing", "Precious", "Shanice", "Tanisha",
     "Kemi", "Funmilayo", "Esi", "Akosua", "Nia", "Adaeze", "Chiamaka", "Yetunde", "Marcia", "Sharon",
     "Janelle", "Simone", "Keisha", "Ifeoma", "Bisola", "Comfort", "Grace", "Joy", "Patience", "Mercy"),
    ("Maya", "Leah", "Jasmine", "Isla", "Chloe", "Ella", "Mia", "Layla", "Amber", "Jade",
     "Skye", "Kiara", "Tia", "Aaliyah", "Naomi", "Sienna", "Eva", "Ruby", "Imani", "Lola"),
    ("Elif", "Zeynep", "Agnieszka", "Katarzyna", "Fatma", "Leila", "Mariam", "Anna", "Joanna", "Ewa",
     "Hiba", "Rania", "Ana", "Maria", "Elena", "Ioana", "Sofia", "Dilek", "Monika", "Yara"),
)
MALE_NAMES: tuple[tuple[str, ...], ...] = (
    ("Oliver", "George", "Harry", "Jack", "Thomas", "William", "James", "Daniel", "Matthew", "Robert",
     "Michael", "David", "Christopher", "Andrew", "Stephen", "Richard", "Joseph", "Samuel", "Benjamin", "Charlie",
     "Alexander", "Edward", "Anthony", "Peter", "Paul", "Mark", "Simon", "Jonathan", "Nicholas", "Luke"),
    ("Mohammed", "Ahmed", "Ali", "Hassan", "Imran", "Rahul", "Arjun", "Sanjay", "Tariq", "Bilal",
     "Omar", "Usman", "Zain", "Abdul", "Raj", "Vikram", "Faisal", "Kamran", "Shahid", "Rizwan",
     "Anil", "Harjit", "Gurpreet", "Ravi", "Nadeem", "Asif", "Saif", "Amir", "Ibrahim", "Yusuf"),
    ("Kwame", "Kofi", "Chukwuemeka", "Oluwaseun", "Tunde", "Emmanuel", "Daniel", "Samuel", "Jerome", "Tyrone",
     "Marcus", "Delroy", "Winston", "Femi", "Chidi", "Kwabena", "Yaw", "Ade", "Ikenna", "Obinna",
     "Jermaine", "Andre", "Leon", "Kayode", "Segun", "Nathaniel", "Joshua", "Isaac", "Elijah", "Michael"),
    ("Noah", "Leo", "Elijah", "Kai", "Jayden", "Tyler", "Reece", "Jordan", "Isaac", "Caleb",
     "Zachary", "Mason", "Ethan", "Malachi", "Jude", "Theo", "Ezra", "Louis", "Micah", "Dylan"),
    ("Mehmet", "Mustafa", "Piotr", "Tomasz", "Krzysztof", "Ahmet", "Karim", "Youssef", "Andrei", "Ion",
     "Jose", "Luis", "Marco", "Stefan", "Emre", "Burak", "Khalid", "Hamza", "Nikolai", "Pavel"),
)
SURNAMES: tuple[tuple[str, ...], ...] = (
    ("Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson",
     "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes", "Green", "Hall",
     "Wood", "Harris", "Lewis", "Martin", "Jackson", "Clarke", "Clark", "Turner", "Hill", "Scott",
     "Cooper", "Morris", "Ward", "Moore", "King", "Watson", "Baker", "Harrison", "Morgan", "Patel",
     "Young", "Allen", "Mitchell", "James", "Anderson", "Phillips", "Lee", "Bell", "Parker", "Davis",
     "O'Brien", "McDonald", "Murphy", "Kelly", "Fitzgerald", "MacKenzie", "Smyth", "Gallagher", "Doyle", "Byrne"),
    ("Patel", "Khan", "Ahmed", "Hussain", "Ali", "Shah", "Begum", "Singh", "Kaur", "Sharma",
     "Rahman", "Islam", "Uddin", "Miah", "Chowdhury", "Akhtar", "Iqbal", "Malik", "Mahmood", "Qureshi",
     "Gupta", "Kumar", "Mistry", "Desai", "Joshi", "Mehta", "Rana", "Butt", "Raja", "Siddiqui",
     "Bibi", "Hoque", "Sheikh", "Aziz", "Rashid", "Anwar", "Parmar", "Gill", "Sandhu", "Dhillon"),
    ("Okafor", "Adeyemi", "Mensah", "Boateng", "Owusu", "Asante", "Okonkwo", "Eze", "Adebayo", "Oluwole",
     "Campbell", "Brown", "Williams", "Johnson", "Thomas", "Francis", "Grant", "Henry", "Reid", "Stewart",
     "Osei", "Appiah", "Nwosu", "Ibekwe", "Afolabi", "Bakare", "Danso", "Ogunleye", "Nwachukwu", "Agyeman",
     "Lewis", "Samuels", "Forbes", "Gordon", "Morgan", "Richards", "Bailey", "Clarke", "Murray", "Edwards"),
    ("Smith", "Campbell", "Williams", "Brown", "Johnson", "Khan", "Taylor", "Thomas", "Ali", "Grant",
     "Jones", "Mensah", "Patel", "Roberts", "Walker", "Green", "Reid", "Hall", "Lewis", "Wright"),
    ("Yilmaz", "Kaya", "Demir", "Nowak", "Kowalski", "Wisniewski", "Popescu", "Ionescu", "Haddad", "Nasser",
     "Garcia", "Rodriguez", "Silva", "Santos", "Rossi", "Ivanov", "Petrov", "Hassan", "Mansour", "Celik"),
)
MIDDLE_NAMES: tuple[str, ...] = ("Anne", "Marie", "Louise", "Jane", "Rose", "John", "James", "Lee", "Michael",
                                 "Ali", "Kumar", "Begum", "Grace", "David", "Ahmed", "Jean", "Joseph", "May")

# Nicknames and informal forms people give, and spelling variants systems record.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Elizabeth": ("Liz", "Beth", "Lizzie"), "Katherine": ("Kate", "Katie", "Kathy"), "Margaret": ("Maggie", "Peggy"),
    "Rebecca": ("Becky",), "Victoria": ("Vicky", "Tori"), "Samantha": ("Sam", "Sammy"), "Jennifer": ("Jenny", "Jen"),
    "Patricia": ("Pat", "Trish"), "Deborah": ("Debbie", "Debs"), "Susan": ("Sue", "Susie"), "Abigail": ("Abbie",),
    "Eleanor": ("Ellie", "Nell"), "Joanne": ("Jo",), "Natalie": ("Nat",), "Charlotte": ("Lottie", "Charlie"),
    "William": ("Will", "Bill", "Billy"), "James": ("Jim", "Jamie"), "Robert": ("Rob", "Bob", "Bobby"),
    "Michael": ("Mike", "Mick"), "Christopher": ("Chris",), "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",),
    "Thomas": ("Tom", "Tommy"), "Joseph": ("Joe",), "Samuel": ("Sam",), "Benjamin": ("Ben",), "Andrew": ("Andy",),
    "Alexander": ("Alex",), "Edward": ("Ed", "Eddie"), "Anthony": ("Tony",), "Richard": ("Rich", "Dick"),
    "Stephen": ("Steve",), "Jonathan": ("Jon",), "Nicholas": ("Nick",), "Peter": ("Pete",), "David": ("Dave",),
    "Oluwaseun": ("Seun",), "Chukwuemeka": ("Emeka",), "Emmanuel": ("Manny",), "Nathaniel": ("Nate",),
    "Funmilayo": ("Funmi",), "Yetunde": ("Tunde",), "Ibrahim": ("Ibby",), "Zachary": ("Zack",),
    "Krzysztof": ("Chris",), "Katarzyna": ("Kasia",), "Mohammed": ("Mo",), "Abdul": ("Abdullah",),
}
SPELLINGS: dict[str, tuple[str, ...]] = {
    "Mohammed": ("Mohammad", "Muhammad", "Mohamed", "Mohd"), "Katherine": ("Catherine", "Kathryn"),
    "Stephen": ("Steven",), "Sarah": ("Sara",), "Aisha": ("Ayesha", "Aysha"), "Fatima": ("Fatimah",),
    "Maryam": ("Mariam", "Miriam"), "Yusuf": ("Yousuf", "Yusef"), "Zainab": ("Zaynab",), "Ahmed": ("Ahmad",),
    "Hassan": ("Hasan",), "Jessica": ("Jesica",), "Leah": ("Lea",), "Zoe": ("Zoey",), "Isla": ("Islay",),
    "Olivia": ("Olivea",), "Tunde": ("Babatunde",), "Chioma": ("Chiomah",), "Nasreen": ("Nasrin",),
    "Yasmin": ("Yasmine", "Jasmin"), "Amina": ("Aminah",), "Rehana": ("Rihana",), "Jose": ("José",),
    "Hussain": ("Hussein", "Husain"), "Chowdhury": ("Choudhury", "Chaudhry"), "Rahman": ("Rehman",),
    "Mahmood": ("Mahmud", "Mehmood"), "Siddiqui": ("Siddiqi",), "Clarke": ("Clark",), "Smyth": ("Smith",),
    "Davies": ("Davis",), "MacKenzie": ("McKenzie",), "O'Brien": ("OBrien", "O Brien"),
    "Okafor": ("Okafo",), "Mensah": ("Mensa",), "Owusu": ("Owusuh",), "Nowak": ("Novak",),
    "Kowalski": ("Kowalsky",), "Yilmaz": ("Yılmaz",), "Ionescu": ("Ionesco",),
}

STREET_WORDS: tuple[str, ...] = (
    "Acacia", "Albion", "Ashdown", "Beech", "Belmont", "Bramley", "Camden", "Castle", "Cedar", "Chalk",
    "Chester", "Church", "Clarence", "College", "Crown", "Delancey", "Eden", "Elm", "Ferndale", "Gloucester",
    "Grafton", "Granville", "Hampden", "Harmood", "Hawley", "Highgate", "Holly", "Kentish", "Leighton", "Lyme",
    "Malden", "Maple", "Marsden", "Midland", "Mornington", "Oakley", "Ossulston", "Park", "Prince", "Queens",
    "Regent", "Rochester", "Rowan", "St Pancras", "Somers", "Southampton", "Stanhope", "Torriano", "Vale", "Wellesley",
    "Willow", "Windsor", "Woodland", "York", "Agar", "Bartholomew", "Carol", "Georgiana", "Inkerman", "Patshull",
)
STREET_TYPES: tuple[str, ...] = ("Street", "Road", "Avenue", "Grove", "Gardens", "Place", "Crescent", "Lane")
BLOCK_TYPES: tuple[str, ...] = ("House", "Court", "Lodge", "Tower", "Mansions")
ABBREVIATIONS: dict[str, str] = {
    "Street": "St", "Road": "Rd", "Avenue": "Ave", "Gardens": "Gdns", "Place": "Pl", "Crescent": "Cres",
    "Grove": "Gr", "Lane": "Ln", "House": "Ho", "Court": "Ct", "Mansions": "Mans", "Tower": "Twr",
}
OUTWARD_CODES: tuple[str, ...] = ("NW1", "NW3", "NW5", "N7", "N19", "WC1")

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typo(rng: np.random.Generator, text: str) -> str:
    """One keying error: a changed, dropped, doubled or swapped letter (text of 3+ letters; else unchanged)."""
    if len(text) < 3:
        return text
    i = int(rng.integers(1, len(text) - 1))
    kind = int(rng.integers(0, 4))
    if kind == 0:
        letter = _LETTERS[int(rng.integers(0, 26))]
        return text[:i] + (letter.upper() if text[i].isupper() else letter) + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]


def informal(rng: np.random.Generator, name: str) -> str:
    """A nickname if the name has one, else the name."""
    options = NICKNAMES.get(name)
    return options[int(rng.integers(0, len(options)))] if options else name


def respell(rng: np.random.Generator, name: str) -> str:
    """Another accepted spelling if the name has one, else the name."""
    options = SPELLINGS.get(name)
    return options[int(rng.integers(0, len(options)))] if options else name
