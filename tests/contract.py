"""The output contract of shared/spec/conditions.md, written out once for the tests."""

CONDITION_IDS: tuple[str, ...] = (
    "primary_hypothyroidism", "subclinical_hypothyroidism", "central_hypothyroidism",
    "hyperthyroidism_overt", "hyperthyroidism_subclinical", "nonthyroidal_illness",
    "cushings_acth_dependent", "cushings_acth_independent", "adrenal_insufficiency_primary",
    "adrenal_insufficiency_secondary", "hypogonadism_primary_male", "hypogonadism_secondary_male",
    "hypogonadism_primary_female", "hypogonadism_secondary_female", "pcos", "hyperprolactinemia",
    "insulin_resistance", "prediabetes", "diabetes",
)
