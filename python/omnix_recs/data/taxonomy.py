"""The shelf plan of the synthetic supermarket: departments, aisles, what is on each shelf.

Pure data plus the small grammar that reads it, kept apart from the code so the plan reads as a
grocer would write it. `catalog.py` turns it into concrete products; `rust_core/src/synth`
simulates households shopping it. Variants say what a product contains and claims, never its
dietary tags: `catalog.py` derives those, so a tag can never contradict the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnix_recs.domain.models import ALLERGENS

# Seasonal profiles. Index order is part of the contract with rust_core/src/synth (u8 codes).
SEASONS: tuple[str, ...] = ("none", "summer", "bbq", "winter", "december", "halloween")

# Who may buy an aisle's products. Index order is part of the contract with rust_core (u8 codes).
AUDIENCES: tuple[str, ...] = ("all", "dog", "cat", "baby", "alcohol")

# Flags say what a product contains and claims: allergen names, content, label claims, household
# hints and season names. A variant adds its own after "|" and removes an aisle flag with "-"
# ("Gluten Free Penne|-gluten").
CONTENT_FLAGS = frozenset({"meat", "pork", "honey", "gelatin", "alcohol", "nonfood"})
CLAIM_FLAGS = frozenset({"lactose_free", "sugar_free", "low_sodium"})
HINT_FLAGS = frozenset({"kids", "plant"})
KNOWN_FLAGS = CONTENT_FLAGS | CLAIM_FLAGS | HINT_FLAGS | frozenset(ALLERGENS) | frozenset(SEASONS[1:])


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    flags: frozenset[str]
    removed: frozenset[str]


@dataclass(frozen=True, slots=True)
class Aisle:
    name: str
    department: str
    cycle: float  # days a household of two takes to use up the base pack
    price: float  # the base pack's standard price
    packs: tuple[tuple[str, float], ...]  # (label, size relative to the base pack)
    variants: tuple[Variant, ...]
    flags: frozenset[str]  # shared by every variant
    season: str  # when it sells (SEASONS); a variant may carry its own
    penetration: float  # share of households for whom the aisle is a regular need
    needs: float  # how many different products such a household keeps buying there
    impulse: float  # how often it is bought on a whim rather than on a cycle
    breadth: float  # relative number of products on the shelf
    audience: str  # who may buy it at all (AUDIENCES)
    organic_share: float
    complements: tuple[tuple[str, float], ...]  # (aisle, chance its product joins this one's basket)

    def variant_flags(self, variant: Variant) -> frozenset[str]:
        return (self.flags - variant.removed) | variant.flags

    def variant_season(self, variant: Variant) -> str:
        own = [s for s in SEASONS[1:] if s in variant.flags]
        return own[0] if own else self.season


def _variant(spec: str) -> Variant:
    name, _, raw = spec.partition("|")
    tokens = [t.strip() for t in raw.split(",") if t.strip()]
    added = frozenset(t for t in tokens if not t.startswith("-"))
    removed = frozenset(t[1:] for t in tokens if t.startswith("-"))
    unknown = (added | removed) - KNOWN_FLAGS
    if unknown:
        raise ValueError(f"variant {name!r}: unknown flags {sorted(unknown)}")
    return Variant(name.strip(), added, removed)


def _packs(spec: str) -> tuple[tuple[str, float], ...]:
    packs = []
    for part in spec.split(";"):
        label, _, factor = part.rpartition("=")
        packs.append((label.strip(), float(factor)))
    return tuple(packs)


def _aisle(
    name: str,
    department: str,
    *,
    cycle: float,
    price: float,
    variants: str,
    packs: str = "1 pack=1",
    flags: str = "",
    season: str = "none",
    penetration: float = 0.0,
    needs: float = 1.0,
    impulse: float = 0.0,
    breadth: float = 1.0,
    audience: str = "all",
    organic_share: float = 0.1,
    complements: tuple[tuple[str, float], ...] = (),
) -> Aisle:
    aisle_flags = frozenset(f.strip() for f in flags.split(",") if f.strip())
    if aisle_flags - KNOWN_FLAGS:
        raise ValueError(f"aisle {name!r}: unknown flags {sorted(aisle_flags - KNOWN_FLAGS)}")
    if season not in SEASONS or audience not in AUDIENCES:
        raise ValueError(f"aisle {name!r}: unknown season or audience")
    return Aisle(
        name=name,
        department=department,
        cycle=cycle,
        price=price,
        packs=_packs(packs),
        variants=tuple(_variant(v) for v in variants.split(";")),
        flags=aisle_flags,
        season=season,
        penetration=penetration,
        needs=needs,
        impulse=impulse,
        breadth=breadth,
        audience=audience,
        organic_share=0.0 if "nonfood" in aisle_flags else organic_share,
        complements=complements,
    )


# Departments in the order they are numbered (department_id = index + 1).
DEPARTMENTS: tuple[str, ...] = (
    "produce",
    "dairy eggs",
    "bakery",
    "meat seafood",
    "deli",
    "frozen",
    "pantry",
    "dry goods pasta",
    "canned goods",
    "breakfast",
    "snacks",
    "beverages",
    "alcohol",
    "international",
    "household",
    "personal care",
    "babies",
    "pets",
)

# Name endings that make brand names sound like they belong to their department.
BRAND_SUFFIXES: dict[str, tuple[str, ...]] = {
    "produce": ("Farms", "Orchards", "Growers", "Fields"),
    "dairy eggs": ("Creamery", "Dairy", "Farms", "Meadows"),
    "bakery": ("Bakery", "Bakehouse", "Ovens", "Mills"),
    "meat seafood": ("Butchers", "Ranch", "Catch", "Farms"),
    "deli": ("Deli", "Provisions", "Kitchen", "Charcuterie"),
    "frozen": ("Kitchen", "Foods", "Frost", "Table"),
    "pantry": ("Pantry", "Foods", "Kitchen", "Provisions"),
    "dry goods pasta": ("Pasta Co.", "Mills", "Grains", "Foods"),
    "canned goods": ("Foods", "Canning Co.", "Harvest", "Pantry"),
    "breakfast": ("Mornings", "Roasters", "Mills", "Foods"),
    "snacks": ("Snacks", "Crunch", "Treats", "Co."),
    "beverages": ("Beverages", "Springs", "Drinks", "Squeeze"),
    "alcohol": ("Brewing", "Vineyards", "Distillers", "Cellars"),
    "international": ("Foods", "Kitchen", "Imports", "Market"),
    "household": ("Home", "Clean", "Household", "Essentials"),
    "personal care": ("Care", "Naturals", "Labs", "Botanicals"),
    "babies": ("Baby", "Little Ones", "Nursery", "Tots"),
    "pets": ("Pet", "Paws", "Companion", "Pet Co."),
}

STORE_BRAND = "Corner Grocer"  # the supermarket's own label: cheapest, on most shelves

# fmt: off
AISLES: tuple[Aisle, ...] = (
    # --- produce ---------------------------------------------------------------------------
    _aisle("fresh fruits", "produce", cycle=6, price=2.2, packs="each=1;family bag=2.5", penetration=0.85, needs=3.2, breadth=2.5, organic_share=0.3,
           variants="Bananas;Strawberries;Blueberries;Gala Apples;Honeycrisp Apples;Avocados;Lemons;Limes;Raspberries;Red Seedless Grapes;Navel Oranges;Clementines|winter;Bartlett Pears;Peaches|summer;Watermelon|summer;Mangoes;Pineapple;Kiwi;Cherries|summer;Cranberries|december"),
    _aisle("fresh vegetables", "produce", cycle=7, price=1.9, packs="each=1;value pack=2.5", penetration=0.85, needs=3.5, breadth=2.5, organic_share=0.3,
           variants="Baby Spinach;Carrots;Broccoli Crowns;Cucumbers;Roma Tomatoes;Yellow Onions;Garlic;Russet Potatoes;Sweet Potatoes;Red Bell Peppers;Zucchini|summer;Celery|celery;Asparagus;Corn on the Cob|bbq;Pie Pumpkin|halloween;Brussels Sprouts|winter;White Mushrooms;Kale;Green Beans;Cauliflower;Butternut Squash|winter",
           complements=(("fresh herbs", 0.08),)),
    _aisle("packaged salads", "produce", cycle=6, price=3.5, penetration=0.4, needs=1.2, organic_share=0.35,
           variants="Spring Mix;Chopped Romaine;Arugula;Baby Kale Blend;Coleslaw Mix|bbq;Caesar Salad Kit|milk,eggs,gluten,fish;Asian Chopped Salad Kit|soy,sesame",
           complements=(("salad dressing", 0.3),)),
    _aisle("fresh herbs", "produce", cycle=14, price=1.8, penetration=0.2, organic_share=0.3,
           variants="Cilantro;Basil|summer;Flat Leaf Parsley;Mint|summer;Rosemary|december;Thyme;Dill"),
    # --- dairy eggs ------------------------------------------------------------------------
    _aisle("milk", "dairy eggs", cycle=4, price=1.3, packs="1 L=1;2 L=2;4 L=4", flags="milk", penetration=0.72, needs=1.1, breadth=1.5, organic_share=0.2,
           variants="Whole Milk;2% Reduced Fat Milk;1% Low Fat Milk;Skim Milk;Lactose Free Milk|lactose_free;Chocolate Milk|kids;A2 Whole Milk"),
    _aisle("plant milk", "dairy eggs", cycle=5, price=2.8, packs="1 L=1;2 L=2", penetration=0.12, organic_share=0.2,
           variants="Oat Milk|plant;Almond Milk|plant,tree_nuts;Soy Milk|plant,soy;Coconut Milk Beverage|plant;Cashew Milk|plant,tree_nuts;Barista Oat Milk|plant"),
    _aisle("eggs", "dairy eggs", cycle=10, price=3.2, packs="6 eggs=0.5;12 eggs=1;18 eggs=1.5", flags="eggs", penetration=0.6, organic_share=0.25,
           variants="Large Brown Eggs;Large White Eggs;Free Range Eggs;Pasture Raised Eggs;Omega-3 Eggs"),
    _aisle("yogurt", "dairy eggs", cycle=6, price=1.2, packs="single cup=1;4 pack=3.5;large tub=6", flags="milk", penetration=0.5, needs=1.6, breadth=1.5, organic_share=0.2,
           variants="Plain Greek Yogurt;Vanilla Greek Yogurt;Strawberry Yogurt;Blueberry Yogurt;Icelandic Skyr;Kids Yogurt Tubes|kids;Coconut Yogurt|-milk,plant;Lactose Free Yogurt|lactose_free;Peach Yogurt|summer"),
    _aisle("packaged cheese", "dairy eggs", cycle=12, price=3.9, flags="milk", penetration=0.55, needs=1.5, breadth=1.3,
           variants="Sharp Cheddar;Fresh Mozzarella;Shredded Mexican Blend;Grated Parmesan;Swiss Slices;Provolone Slices;Colby Jack;Crumbled Feta;Goat Cheese;Cheddar Style Shreds|-milk,plant;American Cheese Slices|kids"),
    _aisle("butter", "dairy eggs", cycle=20, price=3.6, flags="milk", penetration=0.45, organic_share=0.15,
           variants="Salted Butter;Unsalted Butter|december;Spreadable Butter;Plant Butter|-milk,plant;Cultured Butter"),
    _aisle("cream & creamers", "dairy eggs", cycle=9, price=2.4, flags="milk", penetration=0.3, needs=1.1,
           variants="Half & Half;Heavy Whipping Cream|december;French Vanilla Creamer;Hazelnut Creamer;Oat Creamer|-milk,plant;Sour Cream;Pumpkin Spice Creamer|halloween"),
    _aisle("cream cheese & cottage", "dairy eggs", cycle=14, price=2.6, flags="milk", penetration=0.25,
           variants="Original Cream Cheese;Whipped Cream Cheese;Chive Cream Cheese;Small Curd Cottage Cheese;Ricotta"),
    # --- bakery ----------------------------------------------------------------------------
    _aisle("bread", "bakery", cycle=5, price=3.0, flags="gluten", penetration=0.65, needs=1.2, breadth=1.5, organic_share=0.15,
           variants="Whole Wheat Bread;White Sandwich Bread|kids;Sourdough Loaf;Multigrain Bread|sesame;Rye Bread;Gluten Free Bread|-gluten;Brioche Loaf|milk,eggs;Sprouted Grain Bread;Seeded Rye|sesame"),
    _aisle("buns & rolls", "bakery", cycle=14, price=2.8, flags="gluten", season="summer", penetration=0.2,
           variants="Hamburger Buns|bbq;Hot Dog Buns|bbq;Dinner Rolls|december;Brioche Buns|milk,eggs,bbq;Gluten Free Buns|-gluten;Kaiser Rolls",
           complements=(("beef", 0.25), ("hot dogs & sausages", 0.25))),
    _aisle("tortillas & flatbread", "bakery", cycle=12, price=2.7, flags="gluten", penetration=0.3,
           variants="Flour Tortillas;Corn Tortillas|-gluten;Whole Wheat Wraps;Garlic Naan|milk;Pita Bread;Spinach Wraps",
           complements=(("dips & salsa", 0.25), ("mexican foods", 0.2))),
    _aisle("bagels & muffins", "bakery", cycle=10, price=3.4, flags="gluten", penetration=0.25,
           variants="Plain Bagels;Everything Bagels|sesame;Cinnamon Raisin Bagels;English Muffins|milk;Blueberry Muffins|milk,eggs",
           complements=(("cream cheese & cottage", 0.3),)),
    _aisle("bakery desserts", "bakery", cycle=20, price=4.5, flags="gluten,milk,eggs", impulse=1.0,
           variants="Chocolate Chip Cookies;Butter Croissants;Cinnamon Rolls;Fudge Brownies;Apple Pie|december;Pumpkin Pie|halloween;Gingerbread Cookies|december;Stollen|december,tree_nuts;Lemon Bars|summer;Birthday Cake|kids"),
    # --- meat seafood ----------------------------------------------------------------------
    _aisle("poultry", "meat seafood", cycle=8, price=6.5, packs="1 lb=1;family pack=2.5", flags="meat", penetration=0.5, needs=1.4, breadth=1.3, organic_share=0.15,
           variants="Boneless Chicken Breasts;Chicken Thighs;Whole Chicken;Ground Turkey;Chicken Wings|bbq;Chicken Drumsticks|bbq;Turkey Breast Roast|december"),
    _aisle("beef", "meat seafood", cycle=12, price=7.5, packs="1 lb=1;family pack=2.5", flags="meat", penetration=0.4, needs=1.2, organic_share=0.1,
           variants="Ground Beef 85% Lean;Ground Beef 93% Lean;Ribeye Steak|bbq;Sirloin Steak|bbq;Beef Stew Meat|winter;Beef Brisket|bbq;Burger Patties|bbq"),
    _aisle("pork", "meat seafood", cycle=16, price=6.0, flags="meat,pork", penetration=0.25, organic_share=0.05,
           variants="Pork Chops;Thick Cut Bacon;Pork Tenderloin;Baby Back Ribs|bbq;Pulled Pork|bbq;Spiral Ham|december"),
    _aisle("hot dogs & sausages", "meat seafood", cycle=14, price=5.0, flags="meat", season="bbq", penetration=0.15, impulse=0.3, organic_share=0.05,
           variants="Beef Hot Dogs;Bratwurst|pork;Chicken Sausages;Italian Sausages|pork;Chorizo|pork",
           complements=(("buns & rolls", 0.45), ("condiments", 0.2))),
    _aisle("seafood", "meat seafood", cycle=14, price=9.0, flags="fish", penetration=0.25, organic_share=0.0,
           variants="Atlantic Salmon Fillet;Cod Fillet;Tilapia Fillet;Shrimp|-fish,shellfish;Ahi Tuna Steak|bbq;Sea Scallops|-fish,shellfish;Crab Legs|-fish,shellfish,december;Smoked Salmon|december"),
    _aisle("meat alternatives", "meat seafood", cycle=10, price=4.5, flags="plant", penetration=0.08,
           variants="Firm Tofu|soy;Plant-Based Burgers|soy,bbq;Tempeh|soy;Seitan|gluten;Plant-Based Sausages|bbq;Veggie Burgers|gluten;Plant-Based Chicken Strips|soy,gluten"),
    # --- deli ------------------------------------------------------------------------------
    _aisle("lunch meat", "deli", cycle=8, price=4.8, flags="meat", penetration=0.35, needs=1.2,
           variants="Sliced Turkey Breast;Black Forest Ham|pork;Genoa Salami|pork;Roast Beef;Chicken Breast Slices;Pepperoni|pork;Prosciutto|pork"),
    _aisle("prepared meals", "deli", cycle=10, price=7.5, penetration=0.15, impulse=0.6,
           variants="Rotisserie Chicken|meat;Deli Mac & Cheese|gluten,milk;California Sushi Roll|fish,soy,sesame;Potato Salad|eggs,mustard,bbq;Quinoa Salad;Chicken Caesar Wrap|meat,gluten,milk,eggs,fish;Falafel Bowl|sesame,plant"),
    _aisle("dips & salsa", "deli", cycle=12, price=3.8, penetration=0.25, impulse=0.4,
           variants="Classic Hummus|sesame;Chunky Salsa;Guacamole|summer;Spinach Artichoke Dip|milk;French Onion Dip|milk;Tzatziki|milk;Queso Dip|milk;Mango Salsa|summer"),
    _aisle("specialty cheeses", "deli", cycle=21, price=6.5, flags="milk", penetration=0.12, impulse=0.4,
           variants="Aged Gouda;Manchego;Camembert;Blue Cheese;Gruyere;Brie|december;Smoked Cheddar"),
    # --- frozen ----------------------------------------------------------------------------
    _aisle("frozen meals", "frozen", cycle=10, price=4.2, penetration=0.3, needs=1.5, breadth=1.3,
           variants="Chicken Alfredo|meat,milk,gluten;Vegetable Lasagna|milk,gluten;Beef Burrito|meat,gluten;Bean & Cheese Burrito|milk,gluten;Chicken Tikka Masala|meat,milk;Vegan Red Curry Bowl|plant;Mac & Cheese Bowl|milk,gluten;Teriyaki Chicken Bowl|meat,soy,gluten"),
    _aisle("frozen pizza", "frozen", cycle=14, price=6.0, flags="gluten,milk", penetration=0.25, impulse=0.3,
           variants="Pepperoni Pizza|meat,pork;Margherita Pizza;Four Cheese Pizza;Supreme Pizza|meat,pork;Roasted Veggie Pizza;Cauliflower Crust Pizza|-gluten;Kids Cheese Pizza Bites|kids"),
    _aisle("ice cream", "frozen", cycle=14, price=4.8, flags="milk", season="summer", penetration=0.25, impulse=1.4, breadth=1.3,
           variants="Vanilla Bean Ice Cream;Chocolate Ice Cream;Cookies & Cream|gluten;Mint Chocolate Chip;Strawberry Ice Cream;Salted Caramel Ice Cream;Oat Chocolate Frozen Dessert|-milk,plant;Butter Pecan|tree_nuts;Ice Cream Sandwiches|gluten,kids;Fruit Popsicles|-milk,kids"),
    _aisle("frozen vegetables", "frozen", cycle=14, price=2.3, penetration=0.35, needs=1.3,
           variants="Sweet Peas;Broccoli Florets;Mixed Vegetables;Sweet Corn;Cut Green Beans;Chopped Spinach;Stir Fry Vegetables;Riced Cauliflower"),
    _aisle("frozen fruits", "frozen", cycle=12, price=3.8, penetration=0.18, organic_share=0.3,
           variants="Frozen Strawberries;Frozen Blueberries;Mango Chunks;Mixed Berries;Acai Packs;Cherries Pitted"),
    _aisle("frozen breakfast", "frozen", cycle=14, price=3.6, penetration=0.18,
           variants="Homestyle Waffles|gluten,eggs,milk,kids;Buttermilk Pancakes|gluten,eggs,milk;Sausage Egg Breakfast Sandwich|meat,pork,gluten,eggs,milk;Hash Brown Patties;Blueberry Waffles|gluten,eggs,milk"),
    _aisle("frozen snacks", "frozen", cycle=14, price=5.0, penetration=0.18, impulse=0.4,
           variants="Chicken Nuggets|meat,gluten,kids;Fish Sticks|fish,gluten,kids;Mozzarella Sticks|milk,gluten;Crinkle Cut Fries;Pizza Rolls|gluten,milk,meat,pork,kids;Vegetable Spring Rolls|gluten,soy;Pork Dumplings|meat,pork,gluten,soy"),
    # --- pantry ----------------------------------------------------------------------------
    _aisle("pasta sauce", "pantry", cycle=18, price=3.4, penetration=0.35, organic_share=0.15,
           variants="Marinara Sauce;Tomato Basil Sauce;Arrabbiata Sauce;Alfredo Sauce|milk;Vodka Sauce|milk;Basil Pesto|milk,tree_nuts;Bolognese Sauce|meat",
           complements=(("pasta", 0.35),)),
    _aisle("oils & vinegars", "pantry", cycle=45, price=6.0, penetration=0.35,
           variants="Extra Virgin Olive Oil;Canola Oil;Avocado Oil;Balsamic Vinegar;Apple Cider Vinegar;Toasted Sesame Oil|sesame;Coconut Oil;Cooking Spray"),
    _aisle("spices & seasonings", "pantry", cycle=90, price=3.2, penetration=0.3, needs=1.3,
           variants="Ground Black Pepper;Sea Salt;Garlic Powder;Smoked Paprika;Ground Cinnamon|december;Ground Cumin;Italian Seasoning;Chili Powder;Ground Nutmeg|december;Pumpkin Pie Spice|halloween;Grill Seasoning|bbq"),
    _aisle("baking ingredients", "pantry", cycle=40, price=3.0, season="december", penetration=0.25, needs=1.5, impulse=0.4,
           variants="All Purpose Flour|gluten;Granulated Sugar;Light Brown Sugar;Baking Soda;Baking Powder;Pure Vanilla Extract;Semi-Sweet Chocolate Chips|milk;Cocoa Powder;Almond Flour|tree_nuts;Active Dry Yeast;Powdered Sugar;Sprinkles|kids",
           complements=(("butter", 0.3), ("eggs", 0.25))),
    _aisle("condiments", "pantry", cycle=35, price=2.9, penetration=0.4, needs=1.4,
           variants="Tomato Ketchup|bbq;Yellow Mustard|mustard;Mayonnaise|eggs;Hot Sauce;Soy Sauce|soy,gluten;Honey BBQ Sauce|honey,bbq;Sweet Pickle Relish|bbq;Dijon Mustard|mustard"),
    _aisle("salad dressing", "pantry", cycle=21, price=3.3, penetration=0.25,
           variants="Ranch Dressing|milk,eggs;Italian Dressing;Caesar Dressing|milk,eggs,fish;Balsamic Vinaigrette;Honey Mustard Dressing|honey,mustard;Blue Cheese Dressing|milk;Greek Vinaigrette"),
    _aisle("spreads", "pantry", cycle=24, price=3.6, penetration=0.35, needs=1.3,
           variants="Creamy Peanut Butter|peanuts;Crunchy Peanut Butter|peanuts;Almond Butter|tree_nuts;Strawberry Jam;Concord Grape Jelly|kids;Clover Honey|honey;Chocolate Hazelnut Spread|tree_nuts,milk;Sunflower Seed Butter",
           complements=(("bread", 0.15),)),
    _aisle("soup & broth", "canned goods", cycle=14, price=2.4, season="winter", penetration=0.3, needs=1.3,
           variants="Chicken Noodle Soup|meat,gluten;Tomato Soup|milk;Minestrone|gluten;Lentil Soup;New England Clam Chowder|shellfish,milk;Butternut Squash Soup;Chicken Broth|meat;Vegetable Broth;Low Sodium Chicken Broth|meat,low_sodium"),
    _aisle("canned beans & vegetables", "canned goods", cycle=21, price=1.3, penetration=0.35, needs=1.6,
           variants="Black Beans;Chickpeas;Red Kidney Beans;Diced Tomatoes;Tomato Paste;Whole Kernel Corn;Pumpkin Puree|halloween;Coconut Milk;Cannellini Beans;No Salt Added Black Beans|low_sodium"),
    _aisle("canned fish & meat", "canned goods", cycle=30, price=2.2, penetration=0.2,
           variants="Chunk Light Tuna|fish;Albacore Tuna|fish;Pink Salmon|fish;Sardines in Olive Oil|fish;Chunk Chicken Breast|meat;Luncheon Meat|meat,pork"),
    # --- dry goods pasta -------------------------------------------------------------------
    _aisle("pasta", "dry goods pasta", cycle=14, price=1.8, flags="gluten", penetration=0.4, needs=1.3, organic_share=0.12,
           variants="Spaghetti;Penne Rigate;Fusilli;Rigatoni;Linguine;Elbow Macaroni|kids;Lasagna Sheets|december;Egg Noodles|eggs;Gluten Free Penne|-gluten;Whole Wheat Spaghetti",
           complements=(("pasta sauce", 0.45), ("packaged cheese", 0.15))),
    _aisle("rice & grains", "dry goods pasta", cycle=30, price=3.2, penetration=0.35, needs=1.2,
           variants="Jasmine Rice;Basmati Rice;Long Grain Brown Rice;Quinoa;Couscous|gluten;Arborio Rice;Wild Rice Blend;Farro|gluten"),
    _aisle("instant foods", "dry goods pasta", cycle=14, price=1.5, penetration=0.2, impulse=0.3,
           variants="Macaroni & Cheese Dinner|gluten,milk,kids;Chicken Ramen Noodles|gluten,soy;Instant Mashed Potatoes|milk;Cup Noodles|gluten,soy;Microwave Rice Cups"),
    # --- breakfast -------------------------------------------------------------------------
    _aisle("cereal", "breakfast", cycle=12, price=4.0, flags="gluten", penetration=0.45, needs=1.3, breadth=1.3,
           variants="Corn Flakes;Honey Nut Oat Rings|honey,tree_nuts;Frosted Flakes|kids;Bran Flakes;Maple Almond Granola|tree_nuts,honey;Swiss Muesli|tree_nuts;Chocolate Puffs|kids;Gluten Free Oat Rings|-gluten;Fruit Loops|kids",
           complements=(("milk", 0.3), ("plant milk", 0.1))),
    _aisle("oatmeal", "breakfast", cycle=20, price=3.5, flags="gluten", season="winter", penetration=0.2,
           variants="Old Fashioned Oats;Steel Cut Oats;Maple Instant Oatmeal;Apple Cinnamon Instant Oatmeal;Gluten Free Rolled Oats|-gluten"),
    _aisle("breakfast bars", "breakfast", cycle=12, price=4.2, penetration=0.25,
           variants="Oats & Honey Granola Bars|gluten,honey;Chocolate Protein Bars|soy,milk;Strawberry Cereal Bars|gluten,kids;Fruit & Nut Bars|tree_nuts,peanuts;Chewy Chocolate Chip Bars|gluten,milk,kids"),
    _aisle("coffee", "breakfast", cycle=16, price=8.5, packs="12 oz=1;24 oz=2;pods 12 ct=0.8", penetration=0.45, organic_share=0.2,
           variants="Medium Roast Ground Coffee;Dark Roast Whole Bean;Espresso Roast;Decaf Ground Coffee;Breakfast Blend Pods;Cold Brew Concentrate|summer;Instant Coffee;Pumpkin Spice Coffee|halloween",
           complements=(("cream & creamers", 0.3),)),
    _aisle("tea", "breakfast", cycle=30, price=4.0, season="winter", penetration=0.25, organic_share=0.25,
           variants="Green Tea;English Breakfast Tea;Chamomile Tea;Earl Grey Tea;Peppermint Tea;Chai Tea;Winter Spice Tea|december"),
    _aisle("hot cocoa", "breakfast", cycle=25, price=3.8, season="december", impulse=0.5,
           variants="Milk Chocolate Cocoa Mix|milk;Dark Chocolate Cocoa Mix|milk;Peppermint Cocoa Mix|milk;Mini Marshmallows|gelatin,kids"),
    # --- snacks ----------------------------------------------------------------------------
    _aisle("chips & pretzels", "snacks", cycle=10, price=3.9, penetration=0.4, needs=1.4, impulse=1.0, breadth=1.5,
           variants="Sea Salt Potato Chips;Kettle Cooked Chips;BBQ Potato Chips|bbq;Tortilla Chips;Sourdough Pretzels|gluten;Sour Cream & Onion Chips|milk;Veggie Straws|kids;Pita Chips|gluten;Cheese Puffs|milk,kids",
           complements=(("dips & salsa", 0.3),)),
    _aisle("crackers", "snacks", cycle=14, price=3.5, flags="gluten", penetration=0.3,
           variants="Saltine Crackers;Cheddar Cheese Crackers|milk,kids;Whole Grain Crackers;Rice Crackers|-gluten;Graham Crackers|honey,kids;Water Crackers;Everything Crackers|sesame",
           complements=(("specialty cheeses", 0.15), ("packaged cheese", 0.12))),
    _aisle("cookies", "snacks", cycle=14, price=3.8, flags="gluten", penetration=0.25, impulse=0.8,
           variants="Chocolate Sandwich Cookies;Chocolate Chip Cookies|milk,eggs;Oatmeal Raisin Cookies|eggs;Butter Shortbread|milk;Ginger Snaps|december;Animal Crackers|kids;Fig Bars"),
    _aisle("candy & chocolate", "snacks", cycle=20, price=2.5, impulse=1.3, breadth=1.2,
           variants="Milk Chocolate Bar|milk;72% Dark Chocolate Bar;Gummy Bears|gelatin,kids;Peanut Butter Cups|peanuts,milk;Candy Corn|halloween,honey;Fun Size Candy Variety Pack|halloween,peanuts,milk,kids;Candy Canes|december;Chocolate Advent Calendar|december,milk,kids;Sour Gummy Worms|gelatin,kids;Chocolate Truffles|december,milk,tree_nuts"),
    _aisle("nuts & seeds", "snacks", cycle=21, price=5.5, penetration=0.2,
           variants="Roasted Almonds|tree_nuts;Cashews|tree_nuts;Mixed Nuts|tree_nuts,peanuts;Pistachios|tree_nuts;Sunflower Seeds;Trail Mix|tree_nuts,peanuts;Pumpkin Seeds|halloween"),
    _aisle("popcorn", "snacks", cycle=18, price=3.2, impulse=0.6,
           variants="Butter Microwave Popcorn|milk;Kettle Corn;Sea Salt Popcorn;White Cheddar Popcorn|milk"),
    _aisle("dried fruit & fruit snacks", "snacks", cycle=18, price=3.6, penetration=0.15, impulse=0.3,
           variants="Raisins|kids;Dried Mango;Fruit Snacks|gelatin,kids;Apple Chips;Medjool Dates;Dried Cranberries|december"),
    # --- beverages -------------------------------------------------------------------------
    _aisle("water", "beverages", cycle=7, price=4.5, packs="6 x 500 ml=1;24 x 500 ml=4;12 x 355 ml cans=2", season="summer", penetration=0.45, needs=1.2, breadth=1.2,
           variants="Spring Water;Lime Sparkling Water;Grapefruit Sparkling Water;Mineral Water;Alkaline Water;Berry Sparkling Water"),
    _aisle("soft drinks", "beverages", cycle=10, price=5.5, packs="6 x 355 ml=1;12 x 355 ml=2;2 L bottle=1", season="summer", penetration=0.3, impulse=0.5,
           variants="Cola;Diet Cola|sugar_free;Lemon-Lime Soda;Root Beer;Ginger Ale;Orange Soda|kids;Zero Sugar Cola|sugar_free"),
    _aisle("juice", "beverages", cycle=8, price=3.5, packs="1 L=1;2 L=2;8 juice boxes=1", penetration=0.4, needs=1.2, organic_share=0.15,
           variants="Orange Juice;Apple Juice|kids;Cranberry Juice|december;Pink Grapefruit Juice;Green Juice;Lemonade|summer;Kids Juice Boxes|kids"),
    _aisle("sports & energy drinks", "beverages", cycle=10, price=2.5, season="summer", penetration=0.15, impulse=0.4,
           variants="Lemon-Lime Sports Drink;Original Energy Drink;Sugar Free Energy Drink|sugar_free;Electrolyte Water;Fruit Punch Sports Drink|kids"),
    _aisle("iced tea & kombucha", "beverages", cycle=10, price=3.0, season="summer", penetration=0.12, impulse=0.4,
           variants="Lemon Iced Tea;Unsweetened Iced Tea|sugar_free;Ginger Kombucha;Bottled Cold Brew|milk;Peach Iced Tea"),
    # --- alcohol ---------------------------------------------------------------------------
    _aisle("beer", "alcohol", cycle=10, price=10.0, packs="6 x 355 ml=1;12 x 355 ml=2", flags="alcohol,gluten", season="summer", audience="alcohol", penetration=0.35, needs=1.2, impulse=0.5, organic_share=0.0,
           variants="India Pale Ale;Premium Lager;Pilsner;Oatmeal Stout|winter;Summer Wheat Beer|summer;Hard Seltzer|-gluten,summer;Gluten Free Lager|-gluten;Pumpkin Ale|halloween",
           complements=(("chips & pretzels", 0.2),)),
    _aisle("wine", "alcohol", cycle=12, price=13.0, flags="alcohol", audience="alcohol", penetration=0.3, needs=1.3, impulse=0.4, organic_share=0.1,
           variants="Cabernet Sauvignon;Pinot Noir;Chardonnay;Sauvignon Blanc;Rosé|summer;Prosecco|december;Mulled Wine|december;Malbec",
           complements=(("specialty cheeses", 0.12),)),
    _aisle("spirits", "alcohol", cycle=40, price=24.0, flags="alcohol", audience="alcohol", penetration=0.1, impulse=0.2, organic_share=0.0,
           variants="Vodka;London Dry Gin;Kentucky Bourbon;Silver Tequila|summer;Spiced Rum;Eggnog Liqueur|december,milk,eggs"),
    # --- international ---------------------------------------------------------------------
    _aisle("asian foods", "international", cycle=30, price=3.3, penetration=0.2, needs=1.3,
           variants="Rice Noodles;Red Curry Paste|shellfish;Teriyaki Sauce|soy,gluten;Sriracha;Fish Sauce|fish;Nori Sheets;Miso Paste|soy;Hoisin Sauce|soy,gluten"),
    _aisle("mexican foods", "international", cycle=21, price=2.5, penetration=0.2,
           variants="Taco Shells;Refried Beans;Taco Seasoning;Red Enchilada Sauce;Diced Green Chiles;Salsa Verde",
           complements=(("tortillas & flatbread", 0.3), ("beef", 0.2))),
    _aisle("indian foods", "international", cycle=30, price=3.6, penetration=0.1,
           variants="Tikka Masala Sauce|milk;Butter Chicken Sauce|milk;Mango Chutney;Madras Curry Powder;Papadums;Chana Masala"),
    # --- household -------------------------------------------------------------------------
    _aisle("laundry", "household", cycle=35, price=11.0, packs="1.5 L=1;3 L=2", flags="nonfood", penetration=0.45,
           variants="Liquid Laundry Detergent;Laundry Pods;Fabric Softener;Dryer Sheets;Stain Remover;Free & Clear Detergent"),
    _aisle("dish detergents", "household", cycle=30, price=4.5, flags="nonfood", penetration=0.4,
           variants="Dish Soap;Dishwasher Pods;Rinse Aid;Lemon Dish Soap"),
    _aisle("paper goods", "household", cycle=20, price=8.0, packs="6 rolls=1;12 rolls=2;24 rolls=4", flags="nonfood", penetration=0.5, needs=1.5,
           variants="Toilet Paper;Paper Towels;Facial Tissues|winter;Paper Napkins|bbq"),
    _aisle("cleaning products", "household", cycle=45, price=4.2, flags="nonfood", penetration=0.3, needs=1.3,
           variants="All-Purpose Cleaner;Glass Cleaner;Disinfecting Wipes;Bathroom Cleaner;Floor Cleaner;Oven Cleaner|december"),
    _aisle("food storage & trash bags", "household", cycle=40, price=5.5, flags="nonfood", penetration=0.3, needs=1.2,
           variants="Kitchen Trash Bags;Zip Sandwich Bags;Aluminum Foil|bbq;Plastic Wrap;Freezer Bags;Parchment Paper|december"),
    _aisle("grilling & outdoor", "household", cycle=21, price=9.0, flags="nonfood", season="bbq", penetration=0.08, impulse=0.3,
           variants="Charcoal Briquettes;Lighter Fluid;Hickory Wood Chips;Grill Brush;Paper Plates;Disposable Cups"),
    _aisle("seasonal & party", "household", cycle=60, price=5.0, flags="nonfood", impulse=0.35,
           variants="Birthday Candles;Gift Wrap|december;Halloween Decorations|halloween;Party Balloons;Holiday Cards|december;Pumpkin Carving Kit|halloween"),
    # --- personal care ---------------------------------------------------------------------
    _aisle("oral care", "personal care", cycle=40, price=4.0, flags="nonfood", penetration=0.4, needs=1.3,
           variants="Whitening Toothpaste;Sensitive Toothpaste;Soft Toothbrush;Mint Mouthwash;Dental Floss;Kids Toothpaste|kids"),
    _aisle("hair care", "personal care", cycle=45, price=6.0, flags="nonfood", penetration=0.3, needs=1.3,
           variants="Daily Shampoo;Moisturizing Conditioner;Dry Shampoo;Anti-Dandruff Shampoo;Kids 2-in-1 Shampoo|kids"),
    _aisle("soap & body", "personal care", cycle=30, price=4.5, flags="nonfood", penetration=0.35, needs=1.2,
           variants="Body Wash;Bar Soap;Hand Soap Refill;Body Lotion|winter;Lip Balm|winter;Hand Sanitizer"),
    _aisle("deodorant & shaving", "personal care", cycle=45, price=5.5, flags="nonfood", penetration=0.25,
           variants="Antiperspirant Deodorant;Natural Deodorant;Disposable Razors;Shaving Cream;Razor Refills"),
    _aisle("sun care", "personal care", cycle=30, price=9.0, flags="nonfood", season="bbq", penetration=0.1, impulse=0.3,
           variants="Sunscreen SPF 30;Sunscreen SPF 50;After Sun Aloe Gel;Kids Sunscreen SPF 50|kids;Sport Sunscreen Spray"),
    _aisle("cold & flu", "personal care", cycle=30, price=7.0, flags="nonfood", season="winter", penetration=0.1, impulse=0.4,
           variants="Honey Lemon Cough Drops|honey;Pain Reliever Tablets;Cold & Flu Relief;Vitamin C Tablets;Throat Lozenges;Kids Cough Syrup|kids"),
    _aisle("vitamins & supplements", "personal care", cycle=30, price=11.0, flags="nonfood", penetration=0.2,
           variants="Daily Multivitamin;Vitamin D3;Fish Oil Softgels|fish;Probiotic Capsules;Gummy Multivitamin|gelatin,kids;Magnesium Tablets"),
    # --- babies ----------------------------------------------------------------------------
    _aisle("diapers & wipes", "babies", cycle=7, price=14.0, packs="pack=1;jumbo box=2.5", flags="nonfood", audience="baby", penetration=0.9, needs=1.4,
           variants="Diapers Size 1;Diapers Size 2;Diapers Size 3;Diapers Size 4;Sensitive Baby Wipes;Diaper Rash Cream"),
    _aisle("baby food", "babies", cycle=5, price=1.6, packs="pouch=1;6 pack=5", audience="baby", penetration=0.75, needs=1.8, organic_share=0.5,
           variants="Apple Puree Pouch;Sweet Potato Puree;Banana Oat Pouch|gluten;Rice Baby Cereal;Chicken & Vegetable Puree|meat;Pear Puree;Teething Wafers|gluten"),
    _aisle("baby formula", "babies", cycle=7, price=28.0, audience="baby", penetration=0.4, organic_share=0.2,
           variants="Infant Formula|milk;Sensitive Infant Formula|milk,lactose_free;Soy-Based Formula|soy,plant"),
    # --- pets ------------------------------------------------------------------------------
    _aisle("dog food & treats", "pets", cycle=20, price=15.0, packs="2 kg=1;7 kg=3.5", flags="nonfood", audience="dog", penetration=0.95, needs=1.4, organic_share=0.0,
           variants="Chicken & Rice Dry Dog Food|meat;Beef Wet Dog Food|meat;Puppy Dry Food|meat;Dog Biscuits|gluten,meat;Grain Free Salmon Dog Food|fish;Vegetarian Dog Food"),
    _aisle("cat food & litter", "pets", cycle=14, price=9.0, flags="nonfood", audience="cat", penetration=0.95, needs=1.6, organic_share=0.0,
           variants="Salmon Dry Cat Food|fish;Chicken Wet Cat Food|meat;Cat Treats|meat;Kitten Food|meat;Clumping Cat Litter;Unscented Cat Litter"),
)
# fmt: on


def aisle_index() -> dict[str, int]:
    """Aisle name → index (aisle_id = index + 1); also checks the plan is self-consistent."""
    index = {aisle.name: i for i, aisle in enumerate(AISLES)}
    if len(index) != len(AISLES):
        raise ValueError("duplicate aisle names in the shelf plan")
    for aisle in AISLES:
        if aisle.department not in DEPARTMENTS:
            raise ValueError(f"aisle {aisle.name!r}: unknown department {aisle.department!r}")
        for target, _ in aisle.complements:
            if target not in index:
                raise ValueError(f"aisle {aisle.name!r}: unknown complement {target!r}")
    return index
