"""HL7 FHIR R4: a patient's record out as a Bundle, a referral Bundle in at intake.

* :func:`ketapain.fhir.export.export_bundle`: ``Patient/$everything`` of one patient or
  all, every resource validated (:mod:`ketapain.fhir.validation`) and the export audited.
* :func:`ketapain.fhir.intake.import_bundle`: create or update patients from a Bundle,
  all or nothing, duplicates detected.
* :mod:`ketapain.fhir.codes`: the code systems and codes used, with the local CodeSystem.
"""
