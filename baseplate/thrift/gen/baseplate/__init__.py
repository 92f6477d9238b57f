__all__ = ['ttypes', 'constants', 'BaseplateService']
