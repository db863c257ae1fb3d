"""The OpenFisca side, synchronous: loading the systems once, the naive and the fast computations.

Imported only by the worker (thread or child process) and by tests: importing it loads OpenFisca.

Naive path: `compute_naive` builds the plain situation dict of `rights.mapping` with
`SimulationBuilder.build_from_entities` on the unmodified FranceTaxBenefitSystem and calculates the
outputs. It is the reference the fast path is tested against.

Fast path (`compute_fast`), identical results, measured in docs/rights.md:
1. explicit zeros for every resource variable a person did not declare (no formula chains to
   rebuild a salary or a CSG from nothing);
2. a reform, built once, that neutralises variables whose inputs are never asked
   (`NEUTRALISED`) and that applies the past-benefits convention inside the formulas
   (`_convention_formula`), so that households with different declared benefits share one
   vectorised simulation;
3. cuts: benefits whose basic condition is absent from every household of the batch are set to 0
   over the whole window (`_cuts`), which removes their lookbacks;
4. the simulation is built from arrays (declare_person_entity / join_with_persons / set_input);
5. only the displayed outputs are calculated (the prime de Noël is derived, see `prime_noel`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from openfisca_core.reforms import Reform
from openfisca_core.simulation_builder import SimulationBuilder
from openfisca_core.variables import Variable

from rights.mapping import INDIVIDUAL_BENEFIT_VARIABLES, NOT_RECEIVED, RESOURCE_VARIABLES, Household, Reference, to_situation_dict, year_value

log = logging.getLogger(__name__)

# Displayed outputs: (variable, entity, "month" | "year").
OUTPUTS = (
    ("rsa", "famille", "month"),
    ("ppa", "famille", "month"),
    ("aide_logement", "famille", "month"),
    ("cmu_c", "famille", "month"),
    ("css_participation_forfaitaire", "famille", "month"),
    ("af", "famille", "month"),
    ("asf", "famille", "month"),
    ("cf", "famille", "month"),
    ("paje_base", "famille", "month"),
    ("aspa", "famille", "month"),
    ("bourse_college", "famille", "month"),
    ("bourse_lycee", "famille", "month"),
    ("aah", "individu", "month"),
    ("caah", "individu", "month"),
    ("asi", "individu", "month"),
    ("contrat_engagement_jeune", "individu", "month"),
    ("af_nbenf", "famille", "month"),
    ("nb_parents", "famille", "month"),
    ("ars", "famille", "year"),
    ("cheque_energie", "menage", "year"),
)

# Variables whose inputs the flow never asks: always their default for our households.
NEUTRALISED = (
    # unemployment and solidarity allowances needing unasked preconditions
    "ass",
    "aer",
    "api",
    # incomes never asked (found with the OpenFisca tracer: computed, always 0, costly)
    "rente_accident_travail",
    "rsa_base_ressources_patrimoine_individu",
    "rpns_auto_entrepreneur_benefice",
    "indemnites_journalieres",
    "dedommagement_victime_amiante",
    "indemnites_stage",
    "indemnites_chomage_partiel",
    "revenus_stage_formation_pro",
    "bourse_recherche",
    "pensions_alimentaires_versees_individu",
)



@dataclass
class Systems:
    """The tax-benefit systems, built once per process."""

    base: object  # FranceTaxBenefitSystem, for the naive path
    fast: object  # the reform of the fast path
    load_seconds: float


def load_systems() -> Systems:
    from openfisca_france import FranceTaxBenefitSystem

    started = time.perf_counter()
    base = FranceTaxBenefitSystem()
    fast = FastReform(base)
    seconds = time.perf_counter() - started
    log.info("OpenFisca-France tax-benefit system loaded in %.1f s", seconds)
    return Systems(base=base, fast=fast, load_seconds=seconds)


# --- The reform of the fast path -----------------------------------------------------------------


def _month_index(period) -> int:
    start = period.start
    return start.year * 12 + start.month - 1


def _convention_formula(name: str, original: Variable, first: int, last: int):
    """Formula applying the past-benefits convention to `original` (see rights.mapping).

    For a month between M-last and M-first, households that did not declare the benefit get 0,
    the others the original formula. The simulation carries the reference month and the masks
    (`simulation.rights_convention`); without them the original formula runs unchanged.
    """

    def formula(population, period, parameters):
        convention = getattr(population.simulation, "rights_convention", None)
        if convention is not None:
            reference_index, masks = convention
            offset = reference_index - _month_index(period)
            if first <= offset <= last:
                received = masks[name]
                if not received.any():
                    return original.default_array(population.count)
                return np.where(received, _original(population, period, parameters), 0)
        return _original(population, period, parameters)

    def _original(population, period, parameters):
        function = original.get_formula(period)
        if function is None:
            return original.default_array(population.count)
        if function.__code__.co_argcount == 2:
            return function(population, period)
        return function(population, period, parameters)

    return formula


class FastReform(Reform):
    name = "Allervers fast path"

    def apply(self):
        for name in NEUTRALISED:
            self.neutralize_variable(name)
        for variables, first, last in NOT_RECEIVED.values():
            for name in variables:
                original = self.variables[name]
                wrapped = type(name, (Variable,), {"formula": _convention_formula(name, original, first, last)})
                self.update_variable(wrapped)


# --- Building simulations --------------------------------------------------------------------------


def compute_naive(systems: Systems, household: Household, reference: Reference) -> dict:
    """The reference computation: plain situation dict, unmodified system."""
    situation = to_situation_dict(household, reference)
    simulation = SimulationBuilder().build_from_entities(systems.base, situation)
    return _read_outputs(systems.base, simulation, [household], reference)[0]


def compute_naive_batch(systems: Systems, households: list[Household], reference: Reference) -> list[dict]:
    """The naive computation of several households at once, for tests.

    The plain situation dicts are merged into one dict (ids prefixed) and built with
    build_from_entities on the unmodified system. Households are grouped by their past-benefits
    inputs, because in one simulation an input given for some households would give the default,
    not the formula, to the others.
    """
    groups: dict[tuple, list[int]] = {}
    for index, household in enumerate(households):
        groups.setdefault(tuple(sorted(household.not_received)), []).append(index)
    results: list[dict | None] = [None] * len(households)
    for indexes in groups.values():
        merged = {"individus": {}, "familles": {}, "foyers_fiscaux": {}, "menages": {}}
        for index in indexes:
            situation = to_situation_dict(households[index], reference)
            prefix = f"h{index}_"
            for person_id, person in situation["individus"].items():
                merged["individus"][prefix + person_id] = person
            for plural in ("familles", "foyers_fiscaux", "menages"):
                for entity in situation[plural].values():
                    renamed = {
                        key: [prefix + member for member in value] if isinstance(value, list) else value
                        for key, value in entity.items()
                    }
                    merged[plural][f"{prefix}{plural}"] = renamed
        simulation = SimulationBuilder().build_from_entities(systems.base, merged)
        group = [households[index] for index in indexes]
        for index, values in zip(indexes, _read_outputs(systems.base, simulation, group, reference)):
            results[index] = values
    return results


def compute_fast(systems: Systems, households: list[Household], reference: Reference) -> list[dict]:
    """All households in one vectorised simulation on the fast reform; one dict of raw values each."""
    simulation = build_fast_simulation(systems.fast, households, reference)
    return _read_outputs(systems.fast, simulation, households, reference)


def build_fast_simulation(system, households: list[Household], reference: Reference):
    person_household = []
    roles = {"famille": [], "foyer_fiscal": [], "menage": []}
    person_ids = []
    for number, household in enumerate(households):
        person_household.extend([number] * len(household.person_ids))
        person_ids.extend(f"{number}-{person}" for person in household.person_ids)
        roles["famille"].extend(household.famille_roles)
        roles["foyer_fiscal"].extend(household.foyer_roles)
        roles["menage"].extend(household.menage_roles)
    group_ids = [str(number) for number in range(len(households))]

    builder = SimulationBuilder()
    builder.create_entities(system)
    builder.declare_person_entity("individu", person_ids)
    for entity in ("famille", "foyer_fiscal", "menage"):
        population = builder.declare_entity(entity, group_ids)
        # the assignment uses the group ids themselves: join_with_persons sorts both the same way
        builder.join_with_persons(population, np.array(group_ids)[person_household], roles[entity])
    simulation = builder.build(system)

    years = reference.years
    persons = len(person_ids)

    def set_over_window(name: str, values: list) -> None:
        variable = system.variables[name]
        default = variable.default_value
        if variable.value_type in (float, int, bool):
            array = np.array([default if v is None else v for v in values], dtype=variable.dtype)
        elif variable.value_type is str:
            array = np.array([default if v is None else v for v in values], dtype=object)
        else:  # Enum: names
            array = np.array([default.name if v is None else v for v in values], dtype=str)
        for year in years:
            simulation.set_input(name, year, _year_array(name, array))

    birth_dates = [date for household in households for date in household.birth_dates]
    simulation.set_input("date_naissance", "ETERNITY", np.array(birth_dates, dtype="datetime64[D]"))

    person_variables = set(RESOURCE_VARIABLES)
    for household in households:
        person_variables.update(household.person_values)
    for name in sorted(person_variables):
        column: list = []
        for household in households:
            values = household.person_values.get(name) or [None] * len(household.person_ids)
            if name in RESOURCE_VARIABLES:
                values = [0.0 if v is None else v for v in values]
            column.extend(values)
        set_over_window(name, column)
    for entity, attribute in (("famille", "famille_values"), ("menage", "menage_values")):
        names = set()
        for household in households:
            names.update(getattr(household, attribute))
        for name in sorted(names):
            set_over_window(name, [getattr(household, attribute).get(name) for household in households])

    # Past-benefits convention: masks of households (or persons) that declared each benefit.
    masks = {}
    for variables, _, _ in NOT_RECEIVED.values():
        for name in variables:
            received = np.array([name not in household.not_received for household in households])
            if name in INDIVIDUAL_BENEFIT_VARIABLES:
                received = received[np.array(person_household, dtype=int)] if persons else received
            masks[name] = received
    simulation.rights_convention = (reference.year * 12 + reference.month - 1, masks)

    for name in _cuts(households):
        size = persons if system.variables[name].entity.key == "individu" else len(households)
        zeros = np.zeros(size, dtype=np.float32)
        for year in years:
            simulation.set_input(name, year, zeros)
    return simulation


def _year_array(name: str, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f":
        return np.array([year_value(name, value) for value in array], dtype=array.dtype)
    return array


def _cuts(households: list[Household]) -> list[str]:
    """Benefits whose basic condition no household of the batch meets: set to 0 over the window."""
    cuts = []

    def anyone(test) -> bool:
        return any(test(household, index) for household in households for index in range(len(household.person_ids)))

    def value(household: Household, name: str, index: int):
        column = household.person_values.get(name)
        return column[index] if column else None

    if not anyone(lambda h, i: (value(h, "taux_incapacite", i) or 0) >= 0.5):
        cuts += ["aah", "caah", "mva"]
    if not anyone(lambda h, i: value(h, "handicap", i) and (value(h, "retraite_nette", i) or 0) > 0):
        cuts += ["asi"]
    if not anyone(lambda h, i: value(h, "activite", i) == "etudiant" or value(h, "scolarite", i) == "enseignement_superieur"):
        cuts += ["bourse_criteres_sociaux"]
    if not any(age >= 62 for household in households for age in household.ages):
        cuts += ["aspa"]
    if not anyone(lambda h, i: 16 <= h.ages[i] <= 25 or (16 <= h.ages[i] <= 30 and value(h, "handicap", i))):
        cuts += ["contrat_engagement_jeune"]
    return cuts


# --- Reading results --------------------------------------------------------------------------------


def _read_outputs(system, simulation, households: list[Household], reference: Reference) -> list[dict]:
    month = str(reference)
    year = str(reference.year)
    raw: dict[str, np.ndarray] = {}
    famille = simulation.populations["famille"]
    for name, entity, unit in OUTPUTS:
        values = simulation.calculate(name, month if unit == "month" else year)
        if entity == "individu":
            values = famille.sum(values)
        raw[name] = values
    aefa = system.parameters(f"{reference.year}-12").prestations_sociales.solidarite_insertion.autre_solidarite.aefa
    raw["prime_noel"] = prime_noel(raw["rsa"], raw["af_nbenf"], raw["nb_parents"], aefa)
    results = []
    for index in range(len(households)):
        results.append({name: _plain(values[index]) for name, values in raw.items()})
    return results


def prime_noel(rsa: np.ndarray, children: np.ndarray, parents: np.ndarray, aefa) -> np.ndarray:
    """Prime de Noël (aide exceptionnelle de fin d'année) derived from the RSA of the reference month.

    Same amounts as OpenFisca's `aefa` formula (152.45 € x majoration for the household), but the
    condition is "RSA due for the reference month" (the legal rule looks at November or December)
    instead of "RSA in any month of the year", which would cost 12 months of RSA.
    """
    rates = aefa.taux_majoration
    extra_people = (parents >= 2) + children
    majoration = 1 + (
        (extra_people >= 1) * rates.tx_2p
        + np.minimum(children, 2) * rates.tx_supp * (parents == 2)
        + rates.tx_supp * (parents == 1) * (children >= 2)
        + rates.tx_3pac * np.maximum(children - 2, 0)
    )
    return (rsa > 0) * aefa.montant_prime * majoration


def _plain(value):
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    return float(value)
