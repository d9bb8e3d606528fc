"""The shared fixtures give a migrated database with staff on both engines."""

from ketapain.clinic import migrate


def test_template_is_migrated_with_staff(db, staff, patient):
    """Every test database is at the newest revision and holds the four staff roles."""
    assert migrate.current(db) == migrate.head()
    assert set(staff) == {"physician", "nurse", "front_desk", "admin"}
    assert patient.mrn == "T-0001"
