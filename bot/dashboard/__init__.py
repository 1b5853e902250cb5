"""The staff dashboard (/admin): pages for the Collectif's admins and the coordinators."""
