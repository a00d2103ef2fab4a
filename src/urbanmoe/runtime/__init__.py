"""The machine a run works on: device resolution and seeding (``seeding``), and the
measurement of parameters, memory and time that Table 2's efficiency columns report
(``efficiency``)."""
