"""Varied households (answers payloads) shared by the tests and bench/bench_rights.py."""

HOUSEHOLDS: dict[str, dict] = {
    "single_no_income_nantes": {"age": 40, "depcom": "44109", "housing": "tenant", "rent": 500},
    "single_parent_paris_low_wage": {
        "age": 35, "activity": "employee", "resources": {"salary": 1200},
        "children": [{"age": 4}, {"age": 9}], "housing": "tenant", "rent": 700, "depcom": "75056",
    },
    "retired_owner_reunion": {
        "age": 70, "activity": "retired", "resources": {"pension": 600}, "housing": "owner", "depcom": "97411",
    },
    "couple_baby_lyon_hlm": {
        "age": 30, "activity": "employee", "resources": {"salary": 1500},
        "couple": True, "partner_age": 28, "partner_activity": "job_seeker", "partner_resources": {"unemployment": 800},
        "children": [{"age": 1}], "housing": "tenant", "tenant_kind": "social", "rent": 450, "depcom": "69123",
    },
    "disabled_hosted_marseille_aah_received": {
        "age": 45, "disability": "ge80", "activity": "unable_to_work", "housing": "hosted",
        "depcom": "13055", "benefits_received": ["aah"],
    },
    "student_furnished_rennes": {
        "age": 21, "activity": "student", "resources": {"salary": 300},
        "housing": "tenant", "tenant_kind": "furnished", "rent": 400, "depcom": "35238",
    },
    "young_job_seeker_hosted_lille": {
        "age": 23, "activity": "job_seeker", "resources": {"unemployment": 700},
        "housing": "hosted", "hosted_contributes": True, "depcom": "59350",
    },
    "retired_couple_toulouse": {
        "age": 68, "activity": "retired", "resources": {"pension": 900},
        "couple": True, "partner_age": 66, "partner_activity": "retired", "partner_resources": {"pension": 400},
        "housing": "tenant", "rent": 600, "depcom": "31555",
    },
    "low_wage_flatshare_bordeaux": {
        "age": 28, "activity": "employee", "resources": {"salary": 900},
        "housing": "tenant", "rent": 550, "flatshare": True, "depcom": "33063",
    },
    "couple_three_children_owner_loan_strasbourg": {
        "age": 41, "activity": "employee", "resources": {"salary": 2000},
        "couple": True, "partner_age": 39, "partner_activity": "other",
        "children": [{"age": 5}, {"age": 9}, {"age": 14, "school": "college"}],
        "housing": "owner", "owner_loan": 800, "depcom": "67482",
    },
    "recent_single_parent_guadeloupe": {
        "age": 26, "children": [{"age": 2}], "single_parent_recent": True, "alimony_received": 0,
        "housing": "hosted", "depcom": "97120",
    },
    "non_eu_couple_saint_denis": {
        "age": 38, "activity": "employee", "resources": {"salary": 1000},
        "nationality": "other", "residence_permit_years": 7,
        "couple": True, "partner_age": 30, "partner_activity": "other",
        "children": [{"age": 1}, {"age": 16, "school": "lycee"}],
        "housing": "tenant", "rent": 800, "depcom": "93066",
    },
    "disabled_50_79_foyer_limoges": {
        "age": 55, "disability": "50_79", "restricted_access_to_employment": True, "activity": "other",
        "resources": {"pension": 300, "other": 200},
        "housing": "tenant", "tenant_kind": "foyer", "rent": 420, "depcom": "87085",
    },
    "homeless_paris": {"age": 30, "housing": "homeless", "depcom": "75056"},
    "self_employed_rural_owner": {
        "age": 45, "activity": "self_employed", "resources": {"salary": 800}, "housing": "owner", "depcom": "23096",
    },
    "young_couple_alternating_custody_nantes": {
        "age": 25, "activity": "employee", "resources": {"salary": 1400},
        "couple": True, "partner_age": 24, "partner_activity": "employee", "partner_resources": {"salary": 1400},
        "children": [{"age": 8, "alternating_custody": True}],
        "housing": "tenant", "rent": 650, "depcom": "44109",
    },
    "unfit_63_clermont": {
        "age": 63, "activity": "unable_to_work", "housing": "tenant", "rent": 400, "depcom": "63113",
    },
    "eu_job_seeker_nice": {
        "age": 33, "activity": "job_seeker", "nationality": "eu", "residence_permit_years": 2,
        "housing": "tenant", "rent": 600, "depcom": "06088",
    },
    "rsa_ppa_received_grenoble": {
        "age": 30, "activity": "employee", "resources": {"salary": 500},
        "housing": "tenant", "rent": 450, "depcom": "38185", "benefits_received": ["rsa", "prime_activite", "aide_logement"],
    },
    "unknown_income_montpellier": {
        "age": 50, "activity": "employee", "resources": {"salary": None},
        "housing": "tenant", "rent": None, "depcom": "34172",
    },
}
