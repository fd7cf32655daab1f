"""Scan sources (camera, video, images, wedge text) turned into validated, parsed scan events."""
