"""Reference data of the synthetic world: brands and NDCs, territories, names, places, currencies.

Everything here is made up. Brand names, manufacturers and labeler codes are invented so the
sample data can never be mistaken for a real product's figures.
"""

from __future__ import annotations

from dataclasses import dataclass

OWN_MANUFACTURER = "FE Pharma"


@dataclass(frozen=True)
class Brand:
    code: str
    name: str
    molecule: str
    market: str
    manufacturer: str
    labeler: str  # 5-digit NDC labeler code of the manufacturer
    packs: tuple[int, ...]  # units per pack of each NDC
    weight: float  # relative prescription volume

    @property
    def is_own(self) -> bool:
        return self.manufacturer == OWN_MANUFACTURER


BRANDS: tuple[Brand, ...] = (
    # FERTILITY
    Brand("FOLLIVA", "Folliva", "follitropin alfa", "FERTILITY", OWN_MANUFACTURER, "55566", (1, 5, 10), 3.0),
    Brand("MENOFEM", "Menofem", "menotropins", "FERTILITY", OWN_MANUFACTURER, "55566", (1, 5, 10), 3.5),
    Brand("LUTEVA", "Luteva", "progesterone", "FERTILITY", OWN_MANUFACTURER, "55566", (21, 42), 4.0),
    Brand("CHORIFE", "Chorife", "choriogonadotropin alfa", "FERTILITY", OWN_MANUFACTURER, "55566", (1,), 1.5),
    Brand("GONAVEX", "Gonavex", "follitropin alfa", "FERTILITY", "Meridian Biologics", "61234", (1, 3), 3.5),
    Brand("FOLLISTA", "Follista", "follitropin beta", "FERTILITY", "Ostara Therapeutics", "62817",
          (1, 2, 5), 2.5),
    Brand("GANIRA", "Ganira", "ganirelix", "FERTILITY", "Ostara Therapeutics", "62817", (1, 5), 2.5),
    Brand("CETRELIX", "Cetrelix", "cetrorelix", "FERTILITY", "Meridian Biologics", "61234", (1,), 1.5),
    Brand("PROGESTIL", "Progestil", "progesterone", "FERTILITY", "Calder Pharma", "63402", (1, 10), 3.0),
    Brand("OVULEX", "Ovulex", "clomiphene citrate", "FERTILITY", "Northwind Labs", "64119", (5, 10, 30), 2.0),
    # ENDOCRINOLOGY
    Brand("SOMAFE", "Somafe", "somatropin", "ENDOCRINOLOGY", OWN_MANUFACTURER, "55566", (1, 5), 3.0),
    Brand("DESMOFE", "Desmofe", "desmopressin", "ENDOCRINOLOGY", OWN_MANUFACTURER, "55566", (30, 90), 2.5),
    Brand("GROWTROPE", "Growtrope", "somatropin", "ENDOCRINOLOGY", "Meridian Biologics", "61234", (1, 5), 3.0),
    Brand("NORDALIN", "Nordalin", "somatropin", "ENDOCRINOLOGY", "Calder Pharma", "63402", (1, 4), 2.5),
    Brand("SOMAWEEK", "Somaweek", "somapacitan", "ENDOCRINOLOGY", "Ostara Therapeutics", "62817", (1,), 1.5),
    Brand("OCTRELA", "Octrela", "octreotide", "ENDOCRINOLOGY", "Northwind Labs", "64119", (1, 10), 1.5),
    Brand("LANREXA", "Lanrexa", "lanreotide", "ENDOCRINOLOGY", "Calder Pharma", "63402", (1,), 1.0),
)

SPECIALTY_WEIGHTS = {"REI": 18, "OBGYN": 30, "ENDO": 22, "PEDS_ENDO": 8, "UROLOGY": 6, "PCP": 8, "NP_PA": 6,
                     "OTHER": 2}
SPECIALTY_MARKET = {"REI": "FERTILITY", "OBGYN": "FERTILITY", "UROLOGY": "FERTILITY", "ENDO": "ENDOCRINOLOGY",
                    "PEDS_ENDO": "ENDOCRINOLOGY"}  # others write either market, a little
PAYERS = (("COMMERCIAL", 55), ("MEDICARE", 12), ("MEDICAID", 15), ("CASH", 10), ("OTHER", 8))
CHANNELS = {"FERTILITY": (("SPECIALTY", 55), ("RETAIL", 30), ("MAIL", 13), ("LTC", 2)),
            "ENDOCRINOLOGY": (("SPECIALTY", 45), ("MAIL", 30), ("RETAIL", 22), ("LTC", 3))}

REGIONS = (("R01", "East"), ("R02", "West"))
DISTRICTS = (("D01", "Northeast", "R01"), ("D02", "Mid-Atlantic", "R01"), ("D03", "Southeast", "R01"),
             ("D04", "Central", "R02"), ("D05", "Pacific", "R02"))
# territory id, name, district
TERRITORIES = tuple(
    (f"T{n:03d}", name, DISTRICTS[(n - 1) // 4][0])
    for n, name in enumerate((
        "Boston North", "Boston South", "Hartford", "Providence",
        "New York Manhattan", "Long Island", "Philadelphia", "Baltimore-Washington",
        "Atlanta", "Miami, Fort Lauderdale", "Charlotte", "Tampa-Orlando",
        "Chicago", "Minneapolis", "Dallas-Fort Worth", "Houston",
        "Los Angeles", "San Francisco Bay", "Seattle-Portland", "Phoenix & Las Vegas",
    ), start=1)
)

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Priya Wei Mohammed Fatima Carlos Sofia Hiroshi Aiko Olga "
    "Ana Luis Grace Daniel Emily Matthew Hannah Anthony Chloe Mark Nadia Kevin Laura Brian Rachel Omar "
    "Ingrid Jose Chen Amara Renee Zoë José"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Nguyen Hill Flores Green Adams Nelson "
    "Baker Hall Rivera Campbell Mitchell Carter Roberts Patel Kim Cohen Schmidt Müller O'Brien O'Neil "
    "D'Angelo"
).split() + ["Smith, Jr.", "Van der Berg", 'Lee "Doc"']

# city, state, 3-digit zip prefix; each territory draws from its own places
PLACES = {
    "T001": [("Boston", "MA", "021"), ("Cambridge", "MA", "021"), ("Lowell", "MA", "018")],
    "T002": [("Quincy", "MA", "021"), ("Brockton", "MA", "023"), ("Plymouth", "MA", "023")],
    "T003": [("Hartford", "CT", "061"), ("New Haven", "CT", "065"), ("Springfield", "MA", "011")],
    "T004": [("Providence", "RI", "029"), ("Warwick", "RI", "028"), ("Portland", "ME", "041")],
    "T005": [("New York", "NY", "100"), ("Bronx", "NY", "104"), ("Jersey City", "NJ", "073")],
    "T006": [("Garden City", "NY", "115"), ("Huntington", "NY", "117"), ("Stamford", "CT", "069")],
    "T007": [("Philadelphia", "PA", "191"), ("Cherry Hill", "NJ", "080"), ("Wilmington", "DE", "198")],
    "T008": [("Baltimore", "MD", "212"), ("Washington", "DC", "200"), ("Arlington", "VA", "222")],
    "T009": [("Atlanta", "GA", "303"), ("Birmingham", "AL", "352"), ("Chattanooga", "TN", "374")],
    "T010": [("Miami", "FL", "331"), ("Fort Lauderdale", "FL", "333"), ("San Juan", "PR", "009")],
    "T011": [("Charlotte", "NC", "282"), ("Raleigh", "NC", "276"), ("Columbia", "SC", "292")],
    "T012": [("Tampa", "FL", "336"), ("Orlando", "FL", "328"), ("Jacksonville", "FL", "322")],
    "T013": [("Chicago", "IL", "606"), ("Evanston", "IL", "602"), ("Milwaukee", "WI", "532")],
    "T014": [("Minneapolis", "MN", "554"), ("St. Paul", "MN", "551"), ("Des Moines", "IA", "503")],
    "T015": [("Dallas", "TX", "752"), ("Fort Worth", "TX", "761"), ("Oklahoma City", "OK", "731")],
    "T016": [("Houston", "TX", "770"), ("Austin", "TX", "787"), ("New Orleans", "LA", "701")],
    "T017": [("Los Angeles", "CA", "900"), ("Pasadena", "CA", "911"), ("Irvine", "CA", "926")],
    "T018": [("San Francisco", "CA", "941"), ("Palo Alto", "CA", "943"), ("Oakland", "CA", "946")],
    "T019": [("Seattle", "WA", "981"), ("Portland", "OR", "972"), ("Boise", "ID", "837")],
    "T020": [("Phoenix", "AZ", "850"), ("Scottsdale", "AZ", "852"), ("Las Vegas", "NV", "891")],
}
STREETS = ("Main St", "Medical Center Dr", "Oak Ave", "Park Blvd", "Hospital Rd", "Elm St", "Washington St",
           "Lake Shore Dr", "Broadway", "University Ave")
CLINIC_DOMAINS = ("fertilitycare.example", "womenshealth.example", "endoclinic.example", "hospital.example",
                  "medgroup.example", "ivfcenter.example")

# SAP sales organisations and the currency each bills in; weights = share of billing lines
SALES_ORGS = (("US01", "USD", 78), ("DE01", "EUR", 6), ("GB01", "GBP", 5), ("CA01", "CAD", 5),
              ("CH01", "CHF", 3), ("JP01", "JPY", 3))
# EUR-based reference rates the fx random walk starts from
FX_START = {"USD": 1.0842, "GBP": 0.8551, "CAD": 1.4713, "CHF": 0.9478, "JPY": 161.35, "AUD": 1.6382,
            "SEK": 11.412, "NOK": 11.587, "DKK": 7.4601}
# list price per pack in USD, by molecule (roughly)
PACK_PRICE_USD = {
    "follitropin alfa": 620.0, "follitropin beta": 580.0, "menotropins": 540.0, "progesterone": 95.0,
    "choriogonadotropin alfa": 210.0, "ganirelix": 330.0, "cetrorelix": 300.0, "clomiphene citrate": 45.0,
    "somatropin": 1450.0, "somapacitan": 1900.0, "desmopressin": 120.0, "octreotide": 980.0,
    "lanreotide": 2600.0,
}

NOTES = (
    "Discussed dosing schedule",
    "Left samples, follow up next month",
    'Asked about "step therapy" with commercial plans',
    "Reviewed patient support program, copay card",
    "Requested MSL visit; interested in new data",
    "Office manager prefers calls after 3pm, call (555) 201-3344",
    "Short call\nwill revisit formulary question",
    "Discussed access issues, prior auth; nurse line 555-0147",
    "",
    "",
)
