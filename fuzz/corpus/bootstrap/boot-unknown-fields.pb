x¢futureœÿÿÿÿÿÿÿÿB

example.com/Unknownx