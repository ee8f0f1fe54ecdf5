"""Danish formats: day.month.year, 24-hour times, always with the time zone."""

DATE_FORMAT = "j. F Y"
SHORT_DATE_FORMAT = "d.m.Y"
DATETIME_FORMAT = "d.m.Y H:i:s T"
SHORT_DATETIME_FORMAT = "d.m.Y H:i T"
TIME_FORMAT = "H:i"
DECIMAL_SEPARATOR = ","
THOUSAND_SEPARATOR = "."
