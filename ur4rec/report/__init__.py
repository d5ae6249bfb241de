"""Result tables, significance marks and plots over every evaluated run of a dataset."""
